package traffic

import (
	"context"
	"fmt"
	"regexp"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protowire"
)

// Method is the gRPC method the traffic calls.
const Method = "/helloworld.Greeter/SayHello"

// Reply is one answered call.
type Reply struct {
	Message string      // "Hello, Jack! I'm from grpc-helloworld-py-v1-4f2a!"
	From    string      // the instance the message names; "" when it names none
	Header  metadata.MD // the response headers
}

var fromRE = regexp.MustCompile(`I'm from (.+)!$`)

// InstanceOf returns the instance a greeting names ("Hello, Jack! I'm from X!" gives X), or
// "" when it names none.
func InstanceOf(message string) string {
	if m := fromRE.FindStringSubmatch(message); m != nil {
		return m[1]
	}
	return ""
}

// SayHello calls helloworld.Greeter/SayHello with name on cc, encoding the request and
// decoding the reply by hand (field 1, a string, in both), so no generated code is needed.
// It returns the call's error as gRPC reports it (status.Code tells the code).
func SayHello(ctx context.Context, cc grpc.ClientConnInterface, name string) (Reply, error) {
	req := &wire{protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), name)}
	resp := &wire{}
	var hdr metadata.MD
	if err := cc.Invoke(ctx, Method, req, resp, grpc.ForceCodec(wireCodec{}), grpc.Header(&hdr)); err != nil {
		return Reply{Header: hdr}, err
	}
	msg, err := field1(resp.b)
	if err != nil {
		return Reply{Header: hdr}, fmt.Errorf("decode reply: %w", err)
	}
	return Reply{Message: msg, From: InstanceOf(msg), Header: hdr}, nil
}

// field1 returns field 1 (a string) of a protobuf message, skipping other fields.
func field1(b []byte) (string, error) {
	out := ""
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return "", protowire.ParseError(n)
		}
		b = b[n:]
		if num == 1 && typ == protowire.BytesType {
			s, m := protowire.ConsumeString(b)
			if m < 0 {
				return "", protowire.ParseError(m)
			}
			out, b = s, b[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return "", protowire.ParseError(m)
		}
		b = b[m:]
	}
	return out, nil
}

// wire is an encoded message.
type wire struct{ b []byte }

// wireCodec sends and receives encoded messages as they are.
type wireCodec struct{}

func (wireCodec) Name() string { return "proto" }

func (wireCodec) Marshal(v any) ([]byte, error) {
	w, ok := v.(*wire)
	if !ok {
		return nil, fmt.Errorf("traffic codec: cannot marshal %T", v)
	}
	return w.b, nil
}

func (wireCodec) Unmarshal(data []byte, v any) error {
	w, ok := v.(*wire)
	if !ok {
		return fmt.Errorf("traffic codec: cannot unmarshal into %T", v)
	}
	w.b = append(w.b[:0], data...)
	return nil
}
