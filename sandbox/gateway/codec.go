package gateway

import "fmt"

// frame is one gRPC message as the bytes on the wire; the gateway never decodes it.
type frame struct{ data []byte }

// rawCodec passes frames through untouched. It is named "proto" so that the content type
// of forwarded calls stays application/grpc+proto, which every backend accepts.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) ([]byte, error) {
	f, ok := v.(*frame)
	if !ok {
		return nil, fmt.Errorf("gateway codec: cannot marshal %T", v)
	}
	return f.data, nil
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	f, ok := v.(*frame)
	if !ok {
		return fmt.Errorf("gateway codec: cannot unmarshal into %T", v)
	}
	f.data = append(f.data[:0], data...)
	return nil
}
