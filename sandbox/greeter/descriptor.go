package greeter

import (
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

// The names of the helloworld service, as in gRPC's examples/helloworld/helloworld.proto.
const (
	ProtoFile   = "helloworld.proto"
	ServiceName = "helloworld.Greeter"
	MethodName  = "SayHello"
	// FullMethod is the method as gRPC and grpcurl name it.
	FullMethod = "helloworld.Greeter/SayHello"
)

// FileDescriptorProto returns helloworld.proto as a descriptor: package helloworld,
// HelloRequest{string name = 1}, HelloReply{string message = 1} and
// service Greeter { rpc SayHello(HelloRequest) returns (HelloReply) }. Each call returns a
// new copy that the caller may change.
func FileDescriptorProto() *descriptorpb.FileDescriptorProto {
	str := descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum()
	optional := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()
	field := func(name, json string) *descriptorpb.FieldDescriptorProto {
		return &descriptorpb.FieldDescriptorProto{
			Name: proto.String(name), JsonName: proto.String(json),
			Number: proto.Int32(1), Label: optional, Type: str,
		}
	}
	return &descriptorpb.FileDescriptorProto{
		Name:    proto.String(ProtoFile),
		Package: proto.String("helloworld"),
		Syntax:  proto.String("proto3"),
		Options: &descriptorpb.FileOptions{
			GoPackage:          proto.String("google.golang.org/grpc/examples/helloworld/helloworld"),
			JavaPackage:        proto.String("io.grpc.examples.helloworld"),
			JavaOuterClassname: proto.String("HelloWorldProto"),
			JavaMultipleFiles:  proto.Bool(true),
		},
		MessageType: []*descriptorpb.DescriptorProto{
			{Name: proto.String("HelloRequest"), Field: []*descriptorpb.FieldDescriptorProto{field("name", "name")}},
			{Name: proto.String("HelloReply"), Field: []*descriptorpb.FieldDescriptorProto{field("message", "message")}},
		},
		Service: []*descriptorpb.ServiceDescriptorProto{{
			Name: proto.String("Greeter"),
			Method: []*descriptorpb.MethodDescriptorProto{{
				Name:       proto.String(MethodName),
				InputType:  proto.String(".helloworld.HelloRequest"),
				OutputType: proto.String(".helloworld.HelloReply"),
			}},
		}},
	}
}

// Protoset returns a serialized FileDescriptorSet holding helloworld.proto, the format of
// protoc's --descriptor_set_out and grpcurl's -protoset.
func Protoset() ([]byte, error) {
	set := &descriptorpb.FileDescriptorSet{File: []*descriptorpb.FileDescriptorProto{FileDescriptorProto()}}
	b, err := proto.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("marshal helloworld protoset: %w", err)
	}
	return b, nil
}

// schema is helloworld.proto resolved once.
type schema struct {
	files   *protoregistry.Files
	service protoreflect.ServiceDescriptor
	request protoreflect.MessageDescriptor
	reply   protoreflect.MessageDescriptor
	message protoreflect.FieldDescriptor // HelloReply.message
	name    protoreflect.FieldDescriptor // HelloRequest.name
}

func newSchema() (*schema, error) {
	fd, err := protodesc.NewFile(FileDescriptorProto(), nil)
	if err != nil {
		return nil, fmt.Errorf("build helloworld descriptor: %w", err)
	}
	files := new(protoregistry.Files)
	if err := files.RegisterFile(fd); err != nil {
		return nil, fmt.Errorf("register helloworld descriptor: %w", err)
	}
	s := &schema{
		files:   files,
		service: fd.Services().ByName("Greeter"),
		request: fd.Messages().ByName("HelloRequest"),
		reply:   fd.Messages().ByName("HelloReply"),
	}
	s.name = s.request.Fields().ByName("name")
	s.message = s.reply.Fields().ByName("message")
	return s, nil
}
