package pg_test

import (
	"strings"
	"testing"

	"github.com/icpverify/icpverify/pkg/pg"
)

const sampleQueries = `-- The file's own comment.

-- name: LockPhone
-- LockPhone documents itself here; this line is not sent.
SELECT s.id
	FROM sessions s -- kept: inside the statement
	WHERE s.phone = ANY($1::text[])
	FOR UPDATE

-- Section heading, not part of LockPhone.

-- name: PassAll
UPDATE challenges SET state = 'PASSED' WHERE id = ANY($1::uuid[])
`

func TestParseQueries(t *testing.T) {
	t.Parallel()
	got, err := pg.ParseQueries(sampleQueries)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"LockPhone": "SELECT s.id\n\tFROM sessions s -- kept: inside the statement\n\tWHERE s.phone = ANY($1::text[])\n\tFOR UPDATE",
		"PassAll":   "UPDATE challenges SET state = 'PASSED' WHERE id = ANY($1::uuid[])",
	}
	if len(got) != len(want) {
		t.Fatalf("got %d statements %q, want %d", len(got), got, len(want))
	}
	for name, text := range want {
		if got[name] != text {
			t.Errorf("%s = %q, want %q", name, got[name], text)
		}
	}
}

func TestParseQueriesRefuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, src, want string }{
		{"duplicate", "-- name: A\nSELECT 1\n-- name: A\nSELECT 2\n", "line 3: block A already defined at line 1"},
		{"empty block", "-- name: A\n-- only a comment\n\n-- name: B\nSELECT 1\n", "line 1: block A has no statement"},
		{"no name", "-- name:\nSELECT 1\n", `block name ""`},
		{"unexported name", "-- name: lockPhone\nSELECT 1\n", `block name "lockPhone"`},
		{"SQL before the first block", "SELECT 1\n-- name: A\nSELECT 2\n", "SQL before the first"},
	} {
		_, err := pg.ParseQueries(tc.src)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestMustQueries(t *testing.T) {
	t.Parallel()
	q := pg.MustQueries[struct{ LockPhone, PassAll string }]("sample.sql", sampleQueries)
	if !strings.HasPrefix(q.LockPhone, "SELECT s.id") || !strings.HasPrefix(q.PassAll, "UPDATE challenges") {
		t.Fatalf("filled %+v", q)
	}
	panics := func(name, want string, f func()) {
		t.Helper()
		defer func() {
			r, _ := recover().(string)
			if !strings.Contains(r, "pg.MustQueries: sample.sql: ") || !strings.Contains(r, want) {
				t.Errorf("%s: panic %q, want one naming the file and %q", name, r, want)
			}
		}()
		f()
	}
	panics("missing", `no block "-- name: Claim"`, func() {
		pg.MustQueries[struct{ LockPhone, PassAll, Claim string }]("sample.sql", sampleQueries)
	})
	panics("unused", "blocks used by no field of struct { LockPhone string }: PassAll", func() {
		pg.MustQueries[struct{ LockPhone string }]("sample.sql", sampleQueries)
	})
	panics("duplicate", "block PassAll already defined", func() {
		pg.MustQueries[struct{ LockPhone, PassAll string }]("sample.sql", sampleQueries+"-- name: PassAll\nSELECT 1\n")
	})
	panics("not a string", "field N: want an exported string field", func() {
		pg.MustQueries[struct {
			LockPhone, PassAll string
			N                  int
		}]("sample.sql", sampleQueries)
	})
}
