package api

import (
	"errors"
	"fmt"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// gRPC decodes a message from a buffer it then reuses, so protobuf copies
// every bytes field out of it: for the calls that carry file data that is
// a copy of every byte written (a third of a chunkserver's CPU under a
// sequential write, in consumeBytesNoZero) into freshly allocated memory.
// The codec below decodes the messages that carry data with their bytes
// fields pointing into the received buffer instead, and keeps that buffer
// from returning to gRPC's pool: the message owns it, and the garbage
// collector frees it with the message. It encodes them without copying
// the bytes either (a tenth of the mount's CPU, in protowire.AppendBytes).
//
// It is registered under gRPC's name for the protobuf codec ("proto"), so
// it is what every connection of a process that imports this package
// uses; messages of other types go to gRPC's own codec unchanged.

// aliased says whether m is of a type decoded in place.
func aliased(m any) bool {
	switch m.(type) {
	case *WriteRequest, *ReadResponse:
		return true
	}
	return false
}

type codec struct{ base encoding.CodecV2 }

func init() {
	encoding.RegisterCodecV2(codec{base: encoding.GetCodecV2("proto")})
}

func (codec) Name() string { return "proto" }

func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(proto.Message)
	if !ok || !aliased(v) {
		return c.base.Marshal(v)
	}
	var out mem.BufferSlice
	if _, err := marshalAliased(m.ProtoReflect(), &out, 0); err != nil {
		return nil, err
	}
	return out, nil
}

// marshalAliased appends m's encoding to out and returns its length:
// the fields other than bytes and messages encoded by protobuf, then each
// bytes field as its tag and length followed by the bytes themselves, not
// a copy of them; messages the same way. gRPC sends a unary call's or
// answer's buffers before the call returns or after the handler did, so
// nobody changes the bytes meanwhile (the chunkserver answers reads from
// buffers of their own).
func marshalAliased(m protoreflect.Message, out *mem.BufferSlice, depth int) (int, error) {
	if depth > maxAliasDepth {
		return 0, errAliasDepth
	}
	type field struct {
		fd protoreflect.FieldDescriptor
		v  protoreflect.Value
	}
	var apart []field
	shell := m.Type().New()
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.IsMap() || fd.ContainingOneof() != nil ||
			(fd.Kind() != protoreflect.BytesKind && fd.Kind() != protoreflect.MessageKind) {
			shell.Set(fd, v)
		} else {
			apart = append(apart, field{fd, v})
		}
		return true
	})
	shell.SetUnknown(m.GetUnknown())
	head, err := proto.Marshal(shell.Interface())
	if err != nil {
		return 0, err
	}
	n := len(head)
	if n > 0 {
		*out = append(*out, mem.SliceBuffer(head))
	}
	one := func(fd protoreflect.FieldDescriptor, v protoreflect.Value) error {
		var body mem.BufferSlice
		var k int
		if fd.Kind() == protoreflect.BytesKind {
			if b := v.Bytes(); len(b) > 0 {
				body, k = mem.BufferSlice{mem.SliceBuffer(b)}, len(b)
			}
		} else if k, err = marshalAliased(v.Message(), &body, depth+1); err != nil {
			return err
		}
		hdr := protowire.AppendVarint(protowire.AppendTag(nil, fd.Number(), protowire.BytesType), uint64(k))
		*out = append(append(*out, mem.SliceBuffer(hdr)), body...)
		n += len(hdr) + k
		return nil
	}
	for _, f := range apart {
		if !f.fd.IsList() {
			if err := one(f.fd, f.v); err != nil {
				return 0, err
			}
			continue
		}
		l := f.v.List()
		for i := range l.Len() {
			if err := one(f.fd, l.Get(i)); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(proto.Message)
	if !ok || !aliased(v) {
		return c.base.Unmarshal(data, v)
	}
	// Our own reference, never freed: the buffer is the message's now.
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	return unmarshalAliased(buf.ReadOnlyData(), m)
}

// maxAliasDepth bounds the nesting unmarshalAliased follows itself, as
// protobuf's own limit does for what it decodes.
const maxAliasDepth = 100

var errAliasDepth = errors.New("proto: exceeded maximum recursion depth")

// unmarshalAliased is proto.Unmarshal(b, m), except that bytes fields, in
// m and in the messages it holds, are slices of b, not copies. Fields in
// a oneof and map fields are decoded by protobuf, so that which member of
// a oneof wins is its rule, not ours.
func unmarshalAliased(b []byte, m proto.Message) error {
	return aliasInto(b, m.ProtoReflect(), 0)
}

func aliasInto(b []byte, m protoreflect.Message, depth int) error {
	if depth > maxAliasDepth {
		return errAliasDepth
	}
	fields := m.Descriptor().Fields()
	var rest []byte // the fields left to protobuf, in their order
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("proto: %w", protowire.ParseError(n))
		}
		fd := fields.ByNumber(num)
		if fd == nil || typ != protowire.BytesType || fd.IsMap() || fd.ContainingOneof() != nil ||
			(fd.Kind() != protoreflect.BytesKind && fd.Kind() != protoreflect.MessageKind) {
			k := protowire.ConsumeFieldValue(num, typ, b[n:])
			if k < 0 {
				return fmt.Errorf("proto: %w", protowire.ParseError(k))
			}
			rest = append(rest, b[:n+k]...)
			b = b[n+k:]
			continue
		}
		v, k := protowire.ConsumeBytes(b[n:])
		if k < 0 {
			return fmt.Errorf("proto: %w", protowire.ParseError(k))
		}
		b = b[n+k:]
		switch {
		case fd.Kind() == protoreflect.BytesKind && fd.IsList():
			m.Mutable(fd).List().Append(protoreflect.ValueOfBytes(v[:len(v):len(v)]))
		case fd.Kind() == protoreflect.BytesKind && len(v) == 0 && !fd.HasPresence():
			m.Clear(fd) // as protobuf leaves an empty proto3 field: nil
		case fd.Kind() == protoreflect.BytesKind:
			m.Set(fd, protoreflect.ValueOfBytes(v[:len(v):len(v)]))
		case fd.IsList():
			l := m.Mutable(fd).List()
			e := l.NewElement()
			if err := aliasInto(v, e.Message(), depth+1); err != nil {
				return err
			}
			l.Append(e)
		default:
			// A message field seen again merges into what came before.
			if err := aliasInto(v, m.Mutable(fd).Message(), depth+1); err != nil {
				return err
			}
		}
	}
	if len(rest) == 0 {
		return nil
	}
	return proto.UnmarshalOptions{Merge: true, RecursionLimit: maxAliasDepth - depth}.Unmarshal(rest, m.Interface())
}
