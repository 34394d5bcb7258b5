package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
)

// The noon resend across two deadline processes, one of them killed (SIGKILL) at the noon instant and
// started again: every verifier still pending gets exactly one automatic code (a second message, of
// generation 2), a verifier who already passed and an order already decided (all passed, cancelled)
// get none, and nothing more comes until the windows close. verification runs the noon resend a few
// seconds after the first code (--noon-resend-delay, the tests' stand-in for "12:00 the next day";
// the calendar rule is domain/noon_test.go's), deadline with a short lease so a timer the killed
// process held is taken over within the test.
func TestNoonResendTwoDeadlineProcessesAndRestart(t *testing.T) {
	const delay, window = 4 * time.Second, 12 * time.Second
	s := startSuite(t, options{window: window, extraDeadline: true,
		verification: []string{"--noon-resend-delay=" + delay.String()}, deadline: []string{"--lease=3s"}})

	pa1, pa2 := person("正午甲", "13710000001"), person("正午乙", "13710000002")
	pb1, pb2 := person("正午丙", "13710000003"), person("正午丁", "13710000004")
	pc, pd := person("正午戊", "13710000005"), person("正午己", "13710000006")
	both := s.submit(firstFiling(pa1, &filingv1.Website{Domain: "noon-a.cn", Person: pa2}))      // both pending at noon
	onePassed := s.submit(firstFiling(pb1, &filingv1.Website{Domain: "noon-b.cn", Person: pb2})) // pb1 passes first
	allPassed := s.submit(firstFiling(pc, &filingv1.Website{Domain: "noon-c.cn", Person: pc}))   // done before noon
	cancelled := s.submit(firstFiling(pd, &filingv1.Website{Domain: "noon-d.cn", Person: pd}))   // cancelled before noon
	opened := time.Now()
	e164 := func(p *filingv1.Person) string { return "+86" + p.Phone }
	codes := s.waitCodes(1, e164(pa1), e164(pa2), e164(pb1), e164(pb2), e164(pc), e164(pd))
	if _, err := s.verify(e164(pb1), codes[e164(pb1)], tailOf(pb1)); err != nil {
		t.Fatalf("pb1 passes: %v", err)
	}
	if r, err := s.verify(e164(pc), codes[e164(pc)], tailOf(pc)); err != nil || r.Result != verificationv1.VerifyResult_VERIFY_RESULT_ALL_PASSED {
		t.Fatalf("pc passes: %v %v", r, err)
	}
	if _, err := s.Filing.CancelOrder(ctx(t), &filingv1.CancelOrderRequest{RequestId: "cancel-noon-d", OrderId: cancelled.OrderId, Reason: "test"}); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	s.waitState(allPassed.OrderId, filingv1.OrderState_ORDER_STATE_UNDER_REVIEW, 10*time.Second)

	// Kill one deadline process at the noon instant, while the two share the due timers, and start it
	// again: whatever it had claimed comes back to a sweeper after its lease.
	time.Sleep(time.Until(opened.Add(delay)))
	s.kill("deadline")
	s.restart("deadline")

	pending := []string{e164(pa1), e164(pa2), e164(pb2)}
	eventually(t, window, "one automatic code per pending verifier", func() (bool, string) {
		for _, p := range pending {
			if n := len(distinctMessages(s.gateway.ForPhone(p))); n < 2 {
				return false, fmt.Sprintf("%s has %d messages", p, n)
			}
		}
		return true, ""
	})
	// Let both sweepers run past the windows' end: a duplicate would show by then.
	s.waitState(both.OrderId, filingv1.OrderState_ORDER_STATE_RETURNED, window+10*time.Second)
	s.waitState(onePassed.OrderId, filingv1.OrderState_ORDER_STATE_RETURNED, 10*time.Second)
	time.Sleep(time.Second)

	for _, p := range pending {
		ids := distinctMessages(s.gateway.ForPhone(p))
		if len(ids) != 2 || !strings.HasSuffix(ids[1], "-2") {
			t.Errorf("%s received %v; want its first code and one automatic code (generation 2)", p, ids)
		}
	}
	for _, p := range []string{e164(pb1), e164(pc), e164(pd)} {
		if ids := distinctMessages(s.gateway.ForPhone(p)); len(ids) != 1 {
			t.Errorf("%s (passed, or its order decided before noon) received %v; want its first code only", p, ids)
		}
	}

	// The noon timers: fired once for the orders with someone pending (sent), cancelled with the
	// deadline of the orders decided before noon.
	conn, err := pgx.Connect(context.Background(), s.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	want := map[string]string{both.OrderId: "FIRED true", onePassed.OrderId: "FIRED true",
		allPassed.OrderId: "CANCELLED false", cancelled.OrderId: "CANCELLED false"}
	rows, err := conn.Query(context.Background(), `SELECT order_id, state, closed FROM deadline.deadlines WHERE kind = 1`)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for rows.Next() {
		var order, state string
		var closed bool
		if err := rows.Scan(&order, &state, &closed); err != nil {
			t.Fatal(err)
		}
		got[order] = fmt.Sprintf("%s %v", state, closed)
	}
	if rows.Err() != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("noon timers %v (%v); want %v", got, rows.Err(), want)
	}
}
