package gateway

import (
	"bytes"
	"encoding/json"
	"io"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"
)

// codec is the gateway's JSON marshaler: protojson's mapping (runtime.JSONPb with opts), written
// directly for the shapes the hot routes carry, protojson itself for everything else. Answers
// whose fields are scalars, lists, string-keyed maps, plain messages and Anys of those (Verify's
// answer, google.rpc.Status with ErrorInfo) are appended to one buffer, with protojson's field
// order, names, enum names, quoted 64-bit integers, escaping and comma spacing; request bodies of
// string fields only (Verify's, ResendCode's) are read in one pass. Whatever such a body holds
// beyond plain strings (escapes, null, duplicates, unknown fields, bad JSON) goes to protojson
// with the same bytes, so every refusal is protojson's own. codec_test.go proves both paths equal.
type codec struct {
	std *runtime.JSONPb
}

func newCodec(std *runtime.JSONPb) *codec { return &codec{std: std} }

func (c *codec) ContentType(v any) string { return c.std.ContentType(v) }

func (c *codec) Delimiter() []byte { return c.std.Delimiter() }

func (c *codec) Unmarshal(data []byte, v any) error { return c.std.Unmarshal(data, v) }

func (c *codec) NewEncoder(w io.Writer) runtime.Encoder { return c.std.NewEncoder(w) }

// Marshal writes m the fast way when every field of it can be, protojson's way otherwise.
func (c *codec) Marshal(v any) ([]byte, error) {
	if m, ok := v.(proto.Message); ok && c.std.EmitUnpopulated && !c.std.UseProtoNames && !c.std.UseEnumNumbers &&
		c.std.Indent == "" && !c.std.EmitDefaultValues {
		if out, ok := appendMessage(make([]byte, 0, 256), m.ProtoReflect(), ""); ok {
			return out, nil
		}
	}
	return c.std.Marshal(v)
}

// NewDecoder reads a request body (the body of a "*" route: one JSON object).
func (c *codec) NewDecoder(r io.Reader) runtime.Decoder {
	return &bodyDecoder{r: r, opts: c.std.UnmarshalOptions}
}

// bodyDecoder decodes one body. Token reports what follows the decoded value, as json.Decoder's
// does: the generated handlers refuse a body with more than one value.
type bodyDecoder struct {
	r    io.Reader
	opts protojson.UnmarshalOptions
	std  *json.Decoder // the protojson path, once taken
}

func (d *bodyDecoder) Decode(v any) error {
	if m, ok := v.(proto.Message); ok && !d.opts.DiscardUnknown && stringsOnly(m.ProtoReflect().Descriptor()) {
		body, err := io.ReadAll(d.r)
		if err != nil {
			return err
		}
		if decodeStrings(body, m.ProtoReflect()) {
			return nil
		}
		proto.Reset(m)
		d.r = bytes.NewReader(body)
	}
	d.std = json.NewDecoder(d.r)
	return runtime.DecoderWrapper{Decoder: d.std, UnmarshalOptions: d.opts}.Decode(v)
}

// Token is io.EOF after a body the fast path read whole (it accepts trailing space only).
func (d *bodyDecoder) Token() (json.Token, error) {
	if d.std == nil {
		return nil, io.EOF
	}
	return d.std.Token()
}

// stringsOnly says whether every field of md is a singular string outside any oneof: the
// request bodies decodeStrings reads.
func stringsOnly(md protoreflect.MessageDescriptor) bool {
	if v, ok := stringsOnlyCache.Load(md); ok {
		return v.(bool)
	}
	ok := md.ExtensionRanges().Len() == 0
	for i := range md.Fields().Len() {
		fd := md.Fields().Get(i)
		ok = ok && fd.Kind() == protoreflect.StringKind && fd.Cardinality() != protoreflect.Repeated && fd.ContainingOneof() == nil
	}
	stringsOnlyCache.Store(md, ok)
	return ok
}

var stringsOnlyCache sync.Map // protoreflect.MessageDescriptor → bool

// decodeStrings sets m's fields from a body that is one object of string members (JSON or proto
// names, each once, no escapes, valid UTF-8) and nothing but space after it. It reports false,
// leaving m partly set, for anything else: protojson then decides.
func decodeStrings(b []byte, m protoreflect.Message) bool {
	fields := m.Descriptor().Fields()
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return skipSpace(b, i+1) == len(b)
	}
	var seen uint64
	for {
		name, next, ok := plainString(b, i)
		if !ok {
			return false
		}
		fd := fields.ByJSONName(name)
		if fd == nil {
			fd = fields.ByTextName(name)
		}
		if fd == nil || fd.Number() >= 64 || seen&(1<<fd.Number()) != 0 {
			return false
		}
		seen |= 1 << fd.Number()
		i = skipSpace(b, next)
		if i >= len(b) || b[i] != ':' {
			return false
		}
		value, next, ok := plainString(b, skipSpace(b, i+1))
		if !ok {
			return false
		}
		m.Set(fd, protoreflect.ValueOfString(value))
		i = skipSpace(b, next)
		switch {
		case i < len(b) && b[i] == ',':
			i = skipSpace(b, i+1)
		case i < len(b) && b[i] == '}':
			return skipSpace(b, i+1) == len(b)
		default:
			return false
		}
	}
}

// plainString reads the JSON string at b[i] when it has no escape and no control character and
// is valid UTF-8, returning it and the index after its closing quote.
func plainString(b []byte, i int) (string, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return "", 0, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			s := b[i+1 : j]
			return string(s), j + 1, utf8.Valid(s)
		case c == '\\' || c < ' ':
			return "", 0, false
		}
	}
	return "", 0, false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// commaSep is what protojson writes between members and elements in this binary: "," or ", "
// (it adds the space at random per binary, so that nobody relies on its whitespace).
var commaSep = func() string {
	out, _ := protojson.Marshal(&errdetails.ErrorInfo{Reason: "a", Domain: "b"})
	if strings.Contains(string(out), ", ") {
		return ", "
	}
	return ","
}()

// appendMessage appends m as protojson does with EmitUnpopulated (every field, in declaration
// order; unset messages as null), with typeURL as its "@type" member when not empty. It reports
// false for what it does not write: well-known types, oneofs, extensions, floating point, bytes,
// invalid UTF-8 (an error in protojson), and Anys of those.
func appendMessage(out []byte, m protoreflect.Message, typeURL string) ([]byte, bool) {
	md := m.Descriptor()
	if strings.HasPrefix(string(md.FullName()), "google.protobuf.") || md.ExtensionRanges().Len() > 0 {
		return out, false
	}
	out = append(out, '{')
	first := true
	if typeURL != "" {
		out = append(out, `"@type":`...)
		var ok bool
		if out, ok = appendString(out, typeURL); !ok {
			return out, false
		}
		first = false
	}
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if fd.ContainingOneof() != nil {
			return out, false
		}
		if !first {
			out = append(out, commaSep...)
		}
		first = false
		var ok bool
		if out, ok = appendString(out, fd.JSONName()); !ok {
			return out, false
		}
		out = append(out, ':')
		switch {
		case fd.IsList():
			out, ok = appendList(out, m.Get(fd).List(), fd)
		case fd.IsMap():
			out, ok = appendMap(out, m.Get(fd).Map(), fd)
		case fd.Message() != nil && !m.Has(fd):
			out, ok = append(out, "null"...), true
		default:
			out, ok = appendValue(out, m.Get(fd), fd)
		}
		if !ok {
			return out, false
		}
	}
	return append(out, '}'), true
}

func appendList(out []byte, l protoreflect.List, fd protoreflect.FieldDescriptor) ([]byte, bool) {
	out = append(out, '[')
	for i := range l.Len() {
		if i > 0 {
			out = append(out, commaSep...)
		}
		var ok bool
		if out, ok = appendValue(out, l.Get(i), fd); !ok {
			return out, false
		}
	}
	return append(out, ']'), true
}

// appendMap writes a string-keyed map with its keys sorted, as protojson does.
func appendMap(out []byte, mp protoreflect.Map, fd protoreflect.FieldDescriptor) ([]byte, bool) {
	if fd.MapKey().Kind() != protoreflect.StringKind {
		return out, false
	}
	keys := make([]string, 0, mp.Len())
	mp.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
		keys = append(keys, k.String())
		return true
	})
	slices.Sort(keys)
	out = append(out, '{')
	for i, k := range keys {
		if i > 0 {
			out = append(out, commaSep...)
		}
		var ok bool
		if out, ok = appendString(out, k); !ok {
			return out, false
		}
		out = append(out, ':')
		if out, ok = appendValue(out, mp.Get(protoreflect.ValueOfString(k).MapKey()), fd.MapValue()); !ok {
			return out, false
		}
	}
	return append(out, '}'), true
}

// appendValue writes one singular value of fd's kind.
func appendValue(out []byte, v protoreflect.Value, fd protoreflect.FieldDescriptor) ([]byte, bool) {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return appendString(out, v.String())
	case protoreflect.BoolKind:
		return strconv.AppendBool(out, v.Bool()), true
	case protoreflect.EnumKind:
		if fd.Enum().FullName() == "google.protobuf.NullValue" {
			return out, false
		}
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			out = append(out, '"')
			return append(append(out, ev.Name()...), '"'), true
		}
		return strconv.AppendInt(out, int64(v.Enum()), 10), true
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return strconv.AppendInt(out, v.Int(), 10), true
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return strconv.AppendUint(out, v.Uint(), 10), true
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		out = append(out, '"')
		return append(strconv.AppendInt(out, v.Int(), 10), '"'), true
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		out = append(out, '"')
		return append(strconv.AppendUint(out, v.Uint(), 10), '"'), true
	case protoreflect.MessageKind:
		if fd.Message().FullName() == "google.protobuf.Any" {
			return appendAny(out, v.Message())
		}
		return appendMessage(out, v.Message(), "")
	}
	return out, false
}

// appendAny writes an Any as protojson does: the embedded message's fields after "@type".
func appendAny(out []byte, m protoreflect.Message) ([]byte, bool) {
	a, ok := m.Interface().(*anypb.Any)
	if !ok || a.GetTypeUrl() == "" {
		return out, false
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByURL(a.GetTypeUrl())
	if err != nil {
		return out, false
	}
	em := mt.New()
	if err := (proto.UnmarshalOptions{AllowPartial: true}).Unmarshal(a.GetValue(), em.Interface()); err != nil {
		return out, false
	}
	return appendMessage(out, em, a.GetTypeUrl())
}

// appendString writes s quoted and escaped as protojson does; invalid UTF-8 is not written.
func appendString(out []byte, s string) ([]byte, bool) {
	out = append(out, '"')
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		switch {
		case r == utf8.RuneError && n == 1:
			return out, false
		case r < ' ' || r == '"' || r == '\\':
			out = append(out, '\\')
			switch r {
			case '"', '\\':
				out = append(out, byte(r))
			case '\b':
				out = append(out, 'b')
			case '\f':
				out = append(out, 'f')
			case '\n':
				out = append(out, 'n')
			case '\r':
				out = append(out, 'r')
			case '\t':
				out = append(out, 't')
			default:
				out = append(out, 'u')
				out = append(out, "0000"[1+(bits.Len32(uint32(r))-1)/4:]...)
				out = strconv.AppendUint(out, uint64(r), 16)
			}
		default:
			out = append(out, s[:n]...)
		}
		s = s[n:]
	}
	return append(out, '"'), true
}
