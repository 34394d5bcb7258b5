package pg

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
)

// A store keeps its SQL in one file, queries.sql, embedded in its package: each statement is a block
// that starts with a line "-- name: Name". The comment lines right after it document the statement
// and are not sent; the statement runs to the next "-- name:" line, less the blank and comment lines
// that end it (a heading of what follows). Comments before the first block describe the file. The
// statements stay whole SQL, readable and runnable in psql, and the Go code names them.

var nameLineRE = regexp.MustCompile(`^-- name:\s*(\S*)\s*$`)

var queryNameRE = regexp.MustCompile(`^[A-Z][A-Za-z0-9]*$`)

// ParseQueries returns the statements of a queries.sql file by name. A block without a name or a
// statement, a name given twice, or SQL before the first block is an error.
func ParseQueries(src string) (map[string]string, error) {
	out := map[string]string{}
	lineOf := map[string]int{}
	name, start := "", 0 // the current block and the line of its name
	var body []string
	flush := func() error {
		for len(body) > 0 && isBlankOrComment(body[len(body)-1]) {
			body = body[:len(body)-1] // the next block's heading, or nothing
		}
		if name == "" {
			for _, l := range body {
				if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "--") {
					return fmt.Errorf("line %d: SQL before the first \"-- name:\" line", start)
				}
			}
			return nil
		}
		text := strings.TrimRight(strings.Join(body, "\n"), " \t\n")
		if text == "" {
			return fmt.Errorf("line %d: block %s has no statement", start, name)
		}
		out[name] = text
		return nil
	}
	inDoc := false // between a name line and the statement: comment lines document it
	for i, line := range strings.Split(strings.ReplaceAll(src, "\r\n", "\n"), "\n") {
		if m := nameLineRE.FindStringSubmatch(line); m != nil {
			if err := flush(); err != nil {
				return nil, err
			}
			name, start, body, inDoc = m[1], i+1, nil, true
			if !queryNameRE.MatchString(name) {
				return nil, fmt.Errorf("line %d: block name %q: use a Go exported name (LockPhone)", start, name)
			}
			if first, ok := lineOf[name]; ok {
				return nil, fmt.Errorf("line %d: block %s already defined at line %d", start, name, first)
			}
			lineOf[name] = start
			continue
		}
		if inDoc && isBlankOrComment(line) {
			continue
		}
		inDoc = false
		body = append(body, line)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return out, nil
}

func isBlankOrComment(line string) bool {
	t := strings.TrimSpace(line)
	return t == "" || strings.HasPrefix(t, "--")
}

// MustQueries returns a T (a struct of string fields) with each field set to the statement of the
// block of its name in src, the queries.sql of the store; file names src in messages. A store calls
// it when its package loads, so a block missing, duplicated or not used by any field panics at once,
// in every test and at startup, rather than when the statement first runs.
func MustQueries[T any](file, src string) T {
	var q T
	if err := fillQueries(&q, src); err != nil {
		panic(fmt.Sprintf("pg.MustQueries: %s: %v", file, err))
	}
	return q
}

func fillQueries(dst any, src string) error {
	stmts, err := ParseQueries(src)
	if err != nil {
		return err
	}
	v := reflect.ValueOf(dst).Elem()
	if v.Kind() != reflect.Struct {
		return fmt.Errorf("want a struct of string fields, got %s", v.Type())
	}
	used := map[string]bool{}
	for i := range v.NumField() {
		f := v.Type().Field(i)
		if f.Type.Kind() != reflect.String || !f.IsExported() {
			return fmt.Errorf("field %s: want an exported string field", f.Name)
		}
		text, ok := stmts[f.Name]
		if !ok {
			return fmt.Errorf("no block \"-- name: %s\"", f.Name)
		}
		v.Field(i).SetString(text)
		used[f.Name] = true
	}
	var unused []string
	for name := range stmts {
		if !used[name] {
			unused = append(unused, name)
		}
	}
	if len(unused) > 0 {
		slices.Sort(unused)
		return fmt.Errorf("blocks used by no field of %s: %s", v.Type(), strings.Join(unused, ", "))
	}
	return nil
}
