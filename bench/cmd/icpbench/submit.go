package main

import (
	"cmp"
	"context"
	"fmt"
	"time"

	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"

	"github.com/icpverify/icpverify/bench/internal/suite"
)

// submitTag keeps the order sets that go through SubmitOrder apart: the submit phase's (whose
// timers the deadline phase makes due) and the river phase's own.
type submitTag struct {
	name        string // in request ids (<name>-create-<i>) and domains
	phonePrefix string // +86 and 3 digits; the verifier's number follows in 8
	figures     string // prefix of the figures
}

var (
	submitSet = submitTag{name: "bench", phonePrefix: "+86139", figures: ""}
	riverSet  = submitTag{name: "benchriver", phonePrefix: "+86136", figures: "river_"}
)

// submit creates o.submitOrders orders and submits them, the clock running until the gateway has every
// code; it returns the order ids and the orders per second through to the codes.
func submit(ctx context.Context, o options, fig *figures, sink *suite.Sink, client func(int64) filingv1.FilingServiceClient, tag submitTag) ([]string, float64, error) {
	n := int64(o.submitOrders)
	ids := make([]string, n)
	logf("creating %d draft orders (2 verifiers each) for %s", n, cmp.Or(tag.figures, "submit"))
	start := time.Now()
	res, err := runN(ctx, o.clients, n, func(ctx context.Context, i int64) error {
		principal := suite.Person("张三", fmt.Sprintf("%s%08d", tag.phonePrefix, 2*i), int(2*i))
		web := suite.Person("李四", fmt.Sprintf("%s%08d", tag.phonePrefix, 2*i+1), int(2*i+1))
		resp, err := client(i).CreateOrder(ctx, &filingv1.CreateOrderRequest{RequestId: fmt.Sprintf("%s-create-%d", tag.name, i),
			Spec: &filingv1.OrderSpec{
				FilingType: filingv1.FilingType_FILING_TYPE_FIRST_FILING, SubjectName: fmt.Sprintf("杭州示例科技有限公司%d", i),
				SubjectType: filingv1.SubjectType_SUBJECT_TYPE_ORGANIZATION, Principal: principal,
				Websites: []*filingv1.Website{{Domain: fmt.Sprintf("%s%d.cn", tag.name, i), Name: "示例", Person: web}},
			}})
		if err != nil {
			return err
		}
		ids[i] = resp.Order.OrderId
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("CreateOrder (%d failed): %w", res.errs, err)
	}
	fig.add(tag.figures+"create_order_rps", float64(n)/time.Since(start).Seconds(), "rps")

	logf("submitting %d orders; clock stops when the gateway has all %d codes", n, 2*n)
	before := sink.Distinct()
	c0, _ := dbStats(ctx, statsDB, statsName)
	cpu0 := cpuOf()
	if tag.figures == "" {
		profile(o, "submit", 10*time.Second)
	}
	start = time.Now()
	res, err = runN(ctx, o.clients, n, func(ctx context.Context, i int64) error {
		_, err := client(i).SubmitOrder(ctx, &filingv1.SubmitOrderRequest{RequestId: "bench-submit-" + ids[i], OrderId: ids[i]})
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("SubmitOrder (%d failed): %w", res.errs, err)
	}
	rpcs := time.Since(start)
	if !sink.WaitDistinct(before+2*n, 10*time.Minute) {
		return nil, 0, fmt.Errorf("gateway got %d of %d codes", sink.Distinct()-before, 2*n)
	}
	all := time.Since(start)
	rps := float64(n) / all.Seconds()
	fig.add(tag.figures+"submit_rpc_rps", float64(n)/rpcs.Seconds(), "rps")
	fig.add(tag.figures+"submit_rps", rps, "rps")
	c1, _ := dbStats(ctx, statsDB, statsName)
	fig.add(tag.figures+"submit_db_commits_per_order", float64(c1.commits-c0.commits)/float64(n), "tx/order")
	if tag.figures == "" {
		cpuCores(fig, "submit", cpu0, cpuOf(), all)
	}
	return ids, rps, nil
}
