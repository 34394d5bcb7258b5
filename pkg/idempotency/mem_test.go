package idempotency_test

import (
	"testing"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/icpverify/icpverify/pkg/errs"
	"github.com/icpverify/icpverify/pkg/idempotency"
)

func TestDoMem(t *testing.T) {
	t.Parallel()
	table := idempotency.NewMemTable()
	runs := 0
	newResp := func() *wrapperspb.StringValue { return &wrapperspb.StringValue{} }
	do := func(id string, req string) (*wrapperspb.StringValue, error) {
		return idempotency.DoMem(table, "/svc/Create", id, wrapperspb.String(req), newResp, func() (*wrapperspb.StringValue, error) {
			runs++
			return wrapperspb.String(req + " answered"), nil
		})
	}
	first, err := do("r1", "a")
	if err != nil {
		t.Fatal(err)
	}
	again, err := do("r1", "a")
	if err != nil || again.Value != first.Value || runs != 1 {
		t.Fatalf("retry: %v %v, runs %d", again, err, runs)
	}
	if _, err := do("r1", "b"); errs.Reason(err) != "REQUEST_ID_REUSED" {
		t.Fatalf("reused id: %v", err)
	}
	if _, err := do("", "a"); err != nil || runs != 2 {
		t.Fatalf("no request id must run again: runs %d, %v", runs, err)
	}
}
