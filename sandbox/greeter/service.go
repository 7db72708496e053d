package greeter

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/reflection"
	v1reflectiongrpc "google.golang.org/grpc/reflection/grpc_reflection_v1"
	v1alphareflectiongrpc "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"
)

// greeterService is the handler type of the service description; *Server implements it.
type greeterService interface {
	sayHello(ctx context.Context, req *dynamicpb.Message) (*dynamicpb.Message, error)
}

// serviceDesc describes helloworld.Greeter to grpc-go by hand, as protoc-gen-go-grpc would,
// with dynamic messages in place of generated ones.
func (s *Server) serviceDesc() *grpc.ServiceDesc {
	return &grpc.ServiceDesc{
		ServiceName: ServiceName,
		HandlerType: (*greeterService)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: MethodName,
			Handler:    s.handleSayHello,
		}},
		Metadata: ProtoFile,
	}
}

func (s *Server) handleSayHello(srv any, ctx context.Context, dec func(any) error, icp grpc.UnaryServerInterceptor) (any, error) {
	req := dynamicpb.NewMessage(s.schema.request)
	if err := dec(req); err != nil {
		return nil, err
	}
	if icp == nil {
		return srv.(greeterService).sayHello(ctx, req)
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: "/" + FullMethod}
	return icp(ctx, req, info, func(ctx context.Context, req any) (any, error) {
		return srv.(greeterService).sayHello(ctx, req.(*dynamicpb.Message))
	})
}

// registerReflection registers server reflection v1alpha, and v1 too when v1 is set,
// served from the greeter's own descriptors first and the process-wide registry
// (reflection's own protos) second.
func registerReflection(s *grpc.Server, files *protoregistry.Files, v1 bool) {
	o := reflection.ServerOptions{Services: s, DescriptorResolver: fallbackResolver{files}}
	if v1 {
		v1reflectiongrpc.RegisterServerReflectionServer(s, reflection.NewServerV1(o))
	}
	v1alphareflectiongrpc.RegisterServerReflectionServer(s, reflection.NewServer(o))
}

// fallbackResolver resolves from its own files, then from protoregistry.GlobalFiles.
type fallbackResolver struct{ own *protoregistry.Files }

func (r fallbackResolver) FindFileByPath(path string) (protoreflect.FileDescriptor, error) {
	if fd, err := r.own.FindFileByPath(path); err == nil {
		return fd, nil
	}
	return protoregistry.GlobalFiles.FindFileByPath(path)
}

func (r fallbackResolver) FindDescriptorByName(name protoreflect.FullName) (protoreflect.Descriptor, error) {
	if d, err := r.own.FindDescriptorByName(name); err == nil {
		return d, nil
	}
	return protoregistry.GlobalFiles.FindDescriptorByName(name)
}

func protoreflectString(s string) protoreflect.Value { return protoreflect.ValueOfString(s) }
