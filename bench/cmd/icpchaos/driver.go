package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"

	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"

	"github.com/icpverify/icpverify/bench/internal/suite"
)

var errNoCode = errors.New("no code arrived")

// seq numbers orders across all drills of one run, so every verifier has its own phone.
var seq atomic.Int64

// order is one order the driver created.
type order struct {
	n         int64
	id        string
	phones    [2]string
	tails     [2]string
	abandoned bool // an RPC failed for good (no retry in the SIGTERM drill): not checked for "lost"
	noCode    bool // a code had not arrived within the driver's wait; finished during convergence
	// What the suite acknowledged (answered OK): each must be in the database afterwards.
	submitted bool
	verified  int
}

// balanced is a client connection over a static, changeable list of replica addresses with
// round_robin (a manual resolver), as a portal backend in front of several replicas would dial.
type balanced struct {
	r    *manual.Resolver
	conn *grpc.ClientConn
}

var schemeN atomic.Int64

func dialBalanced(addrs ...string) (*balanced, error) {
	r := manual.NewBuilderWithScheme(fmt.Sprintf("icpchaos%d", schemeN.Add(1)))
	r.InitialState(resolverState(addrs))
	conn, err := grpc.NewClient(r.Scheme()+":///suite", grpc.WithResolvers(r),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`))
	if err != nil {
		return nil, err
	}
	conn.Connect()
	return &balanced{r: r, conn: conn}, nil
}

func resolverState(addrs []string) resolver.State {
	var st resolver.State
	for _, a := range addrs {
		st.Addresses = append(st.Addresses, resolver.Address{Addr: a})
	}
	return st
}

func (b *balanced) set(addrs ...string) { b.r.UpdateState(resolverState(addrs)) }

// driver drives orders through the suite as a portal backend would: create, submit, read the codes
// at the SMS gateway, verify each verifier.
type driver struct {
	filing   filingv1.FilingServiceClient
	verif    verificationv1.VerificationServiceClient
	sink     *suite.Sink
	retry    bool      // retry failed RPCs (same request id) until giveUp
	verify   bool      // verify both verifiers; false: leave the orders to expire
	giveUp   time.Time // retries stop then
	codeWait time.Duration

	mu     sync.Mutex
	orders []*order
	phase  string
	fails  map[string]int64 // phase/method/code -> failed RPC attempts
	// lateCodes counts orders whose codes arrived after the driver's wait (verified during convergence)
	lateCodes int
	lateAt    time.Time
	first     map[string]string
}

func newDriver(f filingv1.FilingServiceClient, v verificationv1.VerificationServiceClient, sink *suite.Sink, retry, verify bool) *driver {
	return &driver{filing: f, verif: v, sink: sink, retry: retry, verify: verify, codeWait: 20 * time.Second,
		giveUp: time.Now().Add(time.Hour), phase: "main", fails: map[string]int64{}, first: map[string]string{}}
}

func (d *driver) setPhase(p string) { d.mu.Lock(); d.phase = p; d.mu.Unlock() }

func (d *driver) countFail(method string, err error) {
	c := status.Code(err)
	d.mu.Lock()
	k := d.phase + "/" + method + "/" + c.String()
	d.fails[k]++
	if _, ok := d.first[k]; !ok {
		d.first[k] = err.Error()
	}
	d.mu.Unlock()
}

// failed sums the failed attempts of a phase ("" all phases), optionally of one code only.
func (d *driver) failed(phase string, code ...codes.Code) int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	var n int64
	for k, v := range d.fails {
		p := strings.SplitN(k, "/", 3)
		if phase != "" && p[0] != phase {
			continue
		}
		if len(code) > 0 && p[2] != code[0].String() {
			continue
		}
		n += v
	}
	return n
}

func (d *driver) failSummary() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var ks []string
	for k := range d.fails {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	var b strings.Builder
	for _, k := range ks {
		fmt.Fprintf(&b, "    %s x%d (first: %s)\n", k, d.fails[k], d.first[k])
	}
	return b.String()
}

func retryable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Internal, codes.Unknown, codes.Aborted, codes.Canceled:
		return true
	}
	return false
}

// call runs one RPC with a 5 s deadline; with retry on, transport and server-side failures are
// retried (the request is idempotent) until giveUp.
func (d *driver) call(ctx context.Context, method string, fn func(context.Context) error) (attempts int, err error) {
	for {
		attempts++
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = fn(cctx)
		cancel()
		if err == nil {
			return attempts, nil
		}
		d.countFail(method, err)
		if !d.retry || !retryable(err) || time.Now().After(d.giveUp) || ctx.Err() != nil {
			return attempts, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (d *driver) orderList() []*order {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]*order(nil), d.orders...)
}

// create makes one draft FIRST_FILING order with two verifiers (principal, website person).
func (d *driver) create(ctx context.Context) (*order, error) {
	n := seq.Add(1)
	o := &order{n: n}
	principal := suite.Person("张三", fmt.Sprintf("+86137%08d", 2*n), int(2*n))
	web := suite.Person("李四", fmt.Sprintf("+86137%08d", 2*n+1), int(2*n+1))
	o.phones = [2]string{principal.Phone, web.Phone}
	o.tails = [2]string{principal.IdNumber[12:], web.IdNumber[12:]}
	req := &filingv1.CreateOrderRequest{RequestId: fmt.Sprintf("chaos-create-%d-%d", runID, n),
		Spec: &filingv1.OrderSpec{
			FilingType: filingv1.FilingType_FILING_TYPE_FIRST_FILING, SubjectName: fmt.Sprintf("杭州故障演练科技有限公司%d", n),
			SubjectType: filingv1.SubjectType_SUBJECT_TYPE_ORGANIZATION, Principal: principal,
			Websites: []*filingv1.Website{{Domain: fmt.Sprintf("chaos%d-%d.cn", runID, n), Name: "演练", Person: web}},
		}}
	_, err := d.call(ctx, "CreateOrder", func(ctx context.Context) error {
		resp, err := d.filing.CreateOrder(ctx, req)
		if err == nil {
			o.id = resp.Order.OrderId
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.orders = append(d.orders, o)
	d.mu.Unlock()
	return o, nil
}

func (d *driver) submit(ctx context.Context, o *order) error {
	_, err := d.call(ctx, "SubmitOrder", func(ctx context.Context) error {
		_, err := d.filing.SubmitOrder(ctx, &filingv1.SubmitOrderRequest{RequestId: "chaos-submit-" + o.id, OrderId: o.id})
		return err
	})
	if err == nil {
		d.mu.Lock()
		o.submitted = true
		d.mu.Unlock()
	}
	return err
}

// verifyAll waits for each verifier's code at the gateway and verifies it.
func (d *driver) verifyAll(ctx context.Context, o *order) error {
	for v := range 2 {
		var code string
		end := time.Now().Add(d.codeWait)
		for {
			if c, ok := d.sink.Code(o.phones[v]); ok {
				code = c
				break
			}
			if time.Now().After(end) || ctx.Err() != nil {
				return fmt.Errorf("verifier %d of %s after %s: %w", v+1, o.id, d.codeWait, errNoCode)
			}
			time.Sleep(25 * time.Millisecond)
		}
		attempts, err := d.call(ctx, "Verify", func(ctx context.Context) error {
			_, err := d.verif.Verify(ctx, &verificationv1.VerifyRequest{Phone: o.phones[v], Code: code, IdTail: o.tails[v]})
			return err
		})
		// A retry after an ambiguous failure (the first attempt committed, its answer was lost) is
		// told NotFound ("already complete"); the convergence check decides.
		if err != nil && !(attempts > 1 && status.Code(err) == codes.NotFound) {
			return err
		}
		if err == nil {
			d.mu.Lock()
			o.verified++
			d.mu.Unlock()
		}
	}
	return nil
}

// one drives one order to its end as far as the client is concerned.
func (d *driver) one(ctx context.Context) {
	o, err := d.create(ctx)
	if err != nil {
		return
	}
	if err := d.submit(ctx, o); err != nil {
		o.abandoned = true
		return
	}
	if d.verify {
		if err := d.verifyAll(ctx, o); err != nil {
			if errors.Is(err, errNoCode) {
				d.mu.Lock()
				o.noCode = true
				d.mu.Unlock()
			} else {
				o.abandoned = true
			}
		}
	}
}

// stream runs clients workers, each driving orders one after another, until stop is closed; the
// order in flight then finishes (bounded by the RPC retries' giveUp and the code wait).
func (d *driver) stream(ctx context.Context, clients int, stop <-chan struct{}) {
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				d.one(ctx)
			}
		})
	}
	wg.Wait()
}
