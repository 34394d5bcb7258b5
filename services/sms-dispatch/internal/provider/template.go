package provider

import (
	"fmt"
	"strings"
)

// TemplateValueNames are the values a provider's template may show (Message.Values).
// "link" is the verification link, present when verification runs with --verify-link-base: a
// template that shows it fails messages without one, so map it only with that flag set.
var TemplateValueNames = []string{"code", "deadline", "link"}

// TemplateParam maps one variable of a provider's template to one of our values.
type TemplateParam struct {
	Name  string // the template's variable (aliyun: ${Name}; tencent: {1}, {2}, … by position)
	Value string // ours: code, deadline or link
}

func knownValue(v string) bool {
	for _, n := range TemplateValueNames {
		if v == n {
			return true
		}
	}
	return false
}

// ParseNamedParams reads "var=value,var=value" (aliyun: the template's variable names, each set to
// code, deadline or link), e.g. "code=code,time=deadline". Spaces around items are ignored.
func ParseNamedParams(s string) ([]TemplateParam, error) {
	var out []TemplateParam
	seen := map[string]bool{}
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, value, ok := strings.Cut(item, "=")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if !ok || name == "" {
			return nil, fmt.Errorf("template parameter %q: want variable=value", item)
		}
		if !knownValue(value) {
			return nil, fmt.Errorf("template parameter %q: the value must be one of %s", item, strings.Join(TemplateValueNames, ", "))
		}
		if seen[name] {
			return nil, fmt.Errorf("template parameter %q: variable %s given twice", item, name)
		}
		seen[name] = true
		out = append(out, TemplateParam{Name: name, Value: value})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no template parameter: want at least one variable=value (e.g. code=code)")
	}
	return out, nil
}

// ParsePositionalParams reads "value,value" (tencent: the template's {1}, {2}, … in order, each
// code, deadline or link), e.g. "code,deadline".
func ParsePositionalParams(s string) ([]TemplateParam, error) {
	var out []TemplateParam
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if !knownValue(item) {
			return nil, fmt.Errorf("template parameter %q: must be one of %s", item, strings.Join(TemplateValueNames, ", "))
		}
		out = append(out, TemplateParam{Name: fmt.Sprint(len(out) + 1), Value: item})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no template parameter: want at least one (e.g. code)")
	}
	return out, nil
}

// fill returns the template's values for m in the order of params; it fails when m lacks one.
func fill(params []TemplateParam, m Message) ([]string, error) {
	out := make([]string, len(params))
	for i, p := range params {
		v, ok := m.Values[p.Value]
		if !ok || v == "" {
			return nil, fmt.Errorf("the message has no %s for template variable %s", p.Value, p.Name)
		}
		out[i] = v
	}
	return out, nil
}
