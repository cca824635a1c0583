package api

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// fill sets random values in m's fields, and in the messages it holds
// down to depth 3.
func fill(r *rand.Rand, m protoreflect.Message, depth int) {
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if r.IntN(3) == 0 || fd.IsMap() {
			continue
		}
		if fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind {
			if depth >= 3 {
				continue
			}
			if fd.IsList() {
				l := m.Mutable(fd).List()
				for range r.IntN(3) {
					e := l.NewElement()
					fill(r, e.Message(), depth+1)
					l.Append(e)
				}
			} else {
				fill(r, m.Mutable(fd).Message(), depth+1)
			}
			continue
		}
		if fd.IsList() {
			l := m.Mutable(fd).List()
			for range r.IntN(4) {
				l.Append(randomScalar(r, fd))
			}
			continue
		}
		m.Set(fd, randomScalar(r, fd))
	}
}

func randomScalar(r *rand.Rand, fd protoreflect.FieldDescriptor) protoreflect.Value {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(r.IntN(2) == 1)
	case protoreflect.EnumKind:
		vals := fd.Enum().Values()
		return protoreflect.ValueOfEnum(vals.Get(r.IntN(vals.Len())).Number())
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32(r.Int32() - 1<<30)
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return protoreflect.ValueOfInt64(r.Int64() - 1<<62)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32(r.Uint32())
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return protoreflect.ValueOfUint64(r.Uint64())
	case protoreflect.FloatKind:
		return protoreflect.ValueOfFloat32(r.Float32())
	case protoreflect.DoubleKind:
		return protoreflect.ValueOfFloat64(r.Float64())
	case protoreflect.StringKind:
		return protoreflect.ValueOfString([]string{"", "a", "shard", "ünïcode"}[r.IntN(4)])
	case protoreflect.BytesKind:
		b := make([]byte, []int{0, 1, 7, 4096, 70000}[r.IntN(5)])
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return protoreflect.ValueOfBytes(b)
	}
	panic("unhandled kind " + fd.Kind().String())
}

// Decoding in place gives what protobuf's own decoding gives, for random
// messages of every type decoded so, for two of them concatenated (which
// protobuf decodes as the second merged into the first: repeated fields
// append, message fields merge, the last scalar wins), and for our own
// encoding without copies.
func TestUnmarshalAliasedMatchesProtobuf(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, p := range []proto.Message{&WriteRequest{}, &ReadResponse{}} {
		if !aliased(p) {
			t.Fatalf("%T is not decoded in place", p)
		}
		mt, name := p.ProtoReflect().Type(), p.ProtoReflect().Descriptor().FullName()
		for i := range 2000 {
			a, b := mt.New(), mt.New()
			fill(r, a, 0)
			fill(r, b, 0)
			wa, err := proto.Marshal(a.Interface())
			if err != nil {
				t.Fatal(err)
			}
			wb, _ := proto.Marshal(b.Interface())
			bs, err := codec{}.Marshal(a.Interface())
			if err != nil {
				t.Fatal(err)
			}
			ours := bs.Materialize()
			if len(ours) != proto.Size(a.Interface()) {
				t.Fatalf("%s #%d: encoded in %d bytes, protobuf's size %d", name, i, len(ours), proto.Size(a.Interface()))
			}
			back := mt.New().Interface()
			if err := proto.Unmarshal(ours, back); err != nil || !proto.Equal(back, a.Interface()) {
				t.Fatalf("%s #%d: our encoding decodes to %v (%v), want %v", name, i, back, err, a)
			}
			for _, wire := range [][]byte{wa, append(append([]byte(nil), wa...), wb...), ours} {
				want, got := mt.New().Interface(), mt.New().Interface()
				if err := proto.Unmarshal(wire, want); err != nil {
					t.Fatal(err)
				}
				in := append([]byte(nil), wire...)
				if err := unmarshalAliased(in, got); err != nil {
					t.Fatalf("%s #%d: %v", name, i, err)
				}
				if !proto.Equal(got, want) {
					t.Fatalf("%s #%d: decoded in place\n%v\nprotobuf decoded\n%v", name, i, got, want)
				}
			}
		}
	}
}

// The bytes are the received buffer's, capped so that appending to them
// cannot overwrite what follows.
func TestUnmarshalAliasedShares(t *testing.T) {
	data := bytes.Repeat([]byte{7}, 1000)
	wire, _ := proto.Marshal(&WriteRequest{Id: 9, Data: data, Extents: []*Extent{{Offset: 5, Data: []byte("piece")}}})
	var w WriteRequest
	if err := unmarshalAliased(wire, &w); err != nil {
		t.Fatal(err)
	}
	i := bytes.LastIndex(wire, data)
	wire[i] = 8
	if w.Data[0] != 8 || cap(w.Data) != len(data) {
		t.Errorf("Data does not alias the buffer: first byte %d after the buffer's became 8, cap %d of %d", w.Data[0], cap(w.Data), len(data))
	}
	j := bytes.Index(wire, []byte("piece"))
	wire[j] = 'P'
	if string(w.Extents[0].Data) != "Piece" || w.Id != 9 || w.Extents[0].Offset != 5 {
		t.Errorf("nested extent: %q at %d, id %d", w.Extents[0].Data, w.Extents[0].Offset, w.Id)
	}
}

// Malformed input is refused as protobuf refuses it, and never panics.
func FuzzUnmarshalAliased(f *testing.F) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 20 {
		m := (&WriteRequest{}).ProtoReflect()
		fill(r, m, 0)
		w, _ := proto.Marshal(m.Interface())
		f.Add(w)
		f.Add(w[:len(w)/2])
	}
	f.Add([]byte{0x2a, 0x05, 1, 2}) // data claims 5 bytes, has 2
	f.Fuzz(func(t *testing.T, wire []byte) {
		var want, got WriteRequest
		errWant := proto.Unmarshal(wire, &want)
		errGot := unmarshalAliased(append([]byte(nil), wire...), &got)
		if (errWant == nil) != (errGot == nil) {
			t.Fatalf("protobuf: %v, in place: %v", errWant, errGot)
		}
		if errWant == nil && !proto.Equal(&got, &want) {
			t.Fatalf("decoded in place\n%v\nprotobuf decoded\n%v", &got, &want)
		}
	})
}

// Every gRPC connection of the process uses the codec, and it hands
// messages it does not decode in place to gRPC's.
func TestCodecRegistered(t *testing.T) {
	c, ok := encoding.GetCodecV2("proto").(codec)
	if !ok {
		t.Fatalf("gRPC's proto codec is %T, not ours", encoding.GetCodecV2("proto"))
	}
	for _, m := range []proto.Message{
		&WriteRequest{Id: 3, Data: []byte("data"), ShardData: [][]byte{[]byte("s0"), nil, []byte("s2")}},
		&ReadResponse{Data: []byte("read")},
		&LookupRequest{Parent: 1, Name: "x"},
	} {
		bs, err := c.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		got := m.ProtoReflect().Type().New().Interface()
		if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(bs.Materialize())}, got); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(got, m) {
			t.Errorf("round trip of %T: %v, want %v", m, got, m)
		}
	}
}
