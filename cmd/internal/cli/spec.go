package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"gopkg.in/yaml.v3"

	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
)

// ReadSpecFile reads an OrderSpec from a YAML or JSON file.
func ReadSpecFile(path string) (*filingv1.OrderSpec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	spec, err := ParseSpec(data, strings.EqualFold(filepath.Ext(path), ".json"))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return spec, nil
}

// ParseSpec decodes an OrderSpec written in YAML or JSON. Field names may be snake_case (the proto
// names) or lowerCamelCase (the JSON names); enum values may be the full proto names
// (FILING_TYPE_FIRST_FILING) or the short ones (FIRST_FILING, first-filing). YAML becomes JSON
// and goes through protojson, so the file means exactly what the API means.
func ParseSpec(data []byte, isJSON bool) (*filingv1.OrderSpec, error) {
	var raw any
	trimmed := bytes.TrimSpace(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")))
	if isJSON || bytes.HasPrefix(trimmed, []byte("{")) {
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		dec.UseNumber()
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("not valid JSON: %w", err)
		}
	} else if err := yaml.Unmarshal(trimmed, &raw); err != nil {
		return nil, fmt.Errorf("not valid YAML: %w", err)
	}
	if raw == nil {
		return nil, fmt.Errorf("the file is empty: it should hold an OrderSpec (filing_type, principal, websites...)")
	}
	spec := &filingv1.OrderSpec{}
	clean, err := normalize(raw, spec.ProtoReflect().Descriptor(), "spec")
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(clean)
	if err != nil {
		return nil, err
	}
	if err := protojson.Unmarshal(b, spec); err != nil {
		return nil, fmt.Errorf("not a valid OrderSpec: %w", err)
	}
	return spec, nil
}

// normalize walks a decoded document along the message descriptor md: it resolves field names,
// expands short enum names and turns YAML numbers into strings where the field is a string (an
// unquoted phone number), reporting unknown fields with their path.
func normalize(v any, md protoreflect.MessageDescriptor, path string) (map[string]any, error) {
	m, err := asMap(v, path)
	if err != nil {
		return nil, err
	}
	out := make(map[string]any, len(m))
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fd := md.Fields().ByName(protoreflect.Name(k))
		if fd == nil {
			fd = md.Fields().ByJSONName(k)
		}
		if fd == nil {
			return nil, fmt.Errorf("%s: unknown field %q (known: %s)", path, k, fieldNames(md))
		}
		fpath := path + "." + string(fd.Name())
		val := m[k]
		if val == nil {
			continue
		}
		if fd.IsList() {
			list, ok := val.([]any)
			if !ok {
				return nil, fmt.Errorf("%s: a list is expected", fpath)
			}
			items := make([]any, len(list))
			for i, item := range list {
				if items[i], err = normalizeValue(item, fd, fmt.Sprintf("%s[%d]", fpath, i)); err != nil {
					return nil, err
				}
			}
			out[string(fd.Name())] = items
			continue
		}
		if out[string(fd.Name())], err = normalizeValue(val, fd, fpath); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func normalizeValue(v any, fd protoreflect.FieldDescriptor, path string) (any, error) {
	switch fd.Kind() {
	case protoreflect.MessageKind:
		return normalize(v, fd.Message(), path)
	case protoreflect.EnumKind:
		return enumValue(v, fd.Enum(), path)
	case protoreflect.StringKind:
		switch x := v.(type) {
		case string:
			return x, nil
		case int, int64, uint64, json.Number:
			return fmt.Sprint(x), nil
		case float64:
			if x == math.Trunc(x) && math.Abs(x) < 1e15 {
				return strconv.FormatInt(int64(x), 10), nil
			}
		}
		return nil, fmt.Errorf("%s: a string is expected (quote it)", path)
	case protoreflect.BoolKind:
		switch x := v.(type) {
		case bool:
			return x, nil
		case string:
			if b, err := strconv.ParseBool(x); err == nil {
				return b, nil
			}
		}
		return nil, fmt.Errorf("%s: true or false is expected", path)
	}
	return v, nil
}

// enumValue accepts FILING_TYPE_FIRST_FILING, FIRST_FILING, first-filing or a number.
func enumValue(v any, ed protoreflect.EnumDescriptor, path string) (any, error) {
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case int, int64, json.Number:
		return v, nil
	default:
		return nil, fmt.Errorf("%s: an enum name is expected (%s)", path, enumNames(ed))
	}
	name := strings.ToUpper(strings.NewReplacer("-", "_", " ", "_").Replace(strings.TrimSpace(s)))
	if ed.Values().ByName(protoreflect.Name(name)) != nil {
		return name, nil
	}
	if full := enumPrefix(ed) + name; ed.Values().ByName(protoreflect.Name(full)) != nil {
		return full, nil
	}
	return nil, fmt.Errorf("%s: unknown value %q (use one of %s)", path, s, enumNames(ed))
}

// enumPrefix is the common prefix of an enum's values: FILING_TYPE_ for FilingType.
func enumPrefix(ed protoreflect.EnumDescriptor) string {
	first := string(ed.Values().Get(0).Name())
	if i := strings.Index(first, "_UNSPECIFIED"); i >= 0 {
		return first[:i+1]
	}
	return ""
}

// shortEnum strips the enum prefix for display: FILING_TYPE_FIRST_FILING -> FIRST_FILING.
func shortEnum(e protoreflect.Enum) string {
	ed := e.Descriptor()
	v := ed.Values().ByNumber(e.Number())
	if v == nil {
		return strconv.Itoa(int(e.Number()))
	}
	return strings.TrimPrefix(string(v.Name()), enumPrefix(ed))
}

func enumNames(ed protoreflect.EnumDescriptor) string {
	prefix := enumPrefix(ed)
	var names []string
	for i := 0; i < ed.Values().Len(); i++ {
		n := string(ed.Values().Get(i).Name())
		if strings.HasSuffix(n, "_UNSPECIFIED") {
			continue
		}
		names = append(names, strings.TrimPrefix(n, prefix))
	}
	return strings.Join(names, ", ")
}

func fieldNames(md protoreflect.MessageDescriptor) string {
	var names []string
	for i := 0; i < md.Fields().Len(); i++ {
		names = append(names, string(md.Fields().Get(i).Name()))
	}
	return strings.Join(names, ", ")
}

func asMap(v any, path string) (map[string]any, error) {
	switch x := v.(type) {
	case map[string]any:
		return x, nil
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, val := range x {
			m[fmt.Sprint(k)] = val
		}
		return m, nil
	}
	return nil, fmt.Errorf("%s: a mapping (key: value) is expected", path)
}

// parseEnum reads a short or full enum name from the command line.
func parseEnum(s string, ed protoreflect.EnumDescriptor, flagName string) (protoreflect.EnumNumber, error) {
	v, err := enumValue(s, ed, flagName)
	if err != nil {
		return 0, usageError{err.Error()}
	}
	name, _ := v.(string)
	return ed.Values().ByName(protoreflect.Name(name)).Number(), nil
}
