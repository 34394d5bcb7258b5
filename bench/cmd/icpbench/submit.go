package main

import (
	"context"
	"fmt"
	"time"

	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"

	"github.com/icpverify/icpverify/bench/internal/suite"
)

func submit(ctx context.Context, o options, fig *figures, sink *suite.Sink, client func(int64) filingv1.FilingServiceClient) ([]string, error) {
	n := int64(o.submitOrders)
	ids := make([]string, n)
	logf("creating %d draft orders (2 verifiers each)", n)
	start := time.Now()
	res, err := runN(ctx, o.clients, n, func(ctx context.Context, i int64) error {
		principal := suite.Person("张三", fmt.Sprintf("+86139%08d", 2*i), int(2*i))
		web := suite.Person("李四", fmt.Sprintf("+86139%08d", 2*i+1), int(2*i+1))
		resp, err := client(i).CreateOrder(ctx, &filingv1.CreateOrderRequest{RequestId: fmt.Sprintf("bench-create-%d", i),
			Spec: &filingv1.OrderSpec{
				FilingType: filingv1.FilingType_FILING_TYPE_FIRST_FILING, SubjectName: fmt.Sprintf("杭州示例科技有限公司%d", i),
				SubjectType: filingv1.SubjectType_SUBJECT_TYPE_ORGANIZATION, Principal: principal,
				Websites: []*filingv1.Website{{Domain: fmt.Sprintf("bench%d.cn", i), Name: "示例", Person: web}},
			}})
		if err != nil {
			return err
		}
		ids[i] = resp.Order.OrderId
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("CreateOrder (%d failed): %w", res.errs, err)
	}
	fig.add("create_order_rps", float64(n)/time.Since(start).Seconds(), "rps")

	logf("submitting %d orders; clock stops when the gateway has all %d codes", n, 2*n)
	before := sink.Distinct()
	c0, _ := dbStats(ctx, statsDB, statsName)
	cpu0 := cpuOf()
	profile(o, "submit", 10*time.Second)
	start = time.Now()
	res, err = runN(ctx, o.clients, n, func(ctx context.Context, i int64) error {
		_, err := client(i).SubmitOrder(ctx, &filingv1.SubmitOrderRequest{RequestId: "bench-submit-" + ids[i], OrderId: ids[i]})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("SubmitOrder (%d failed): %w", res.errs, err)
	}
	rpcs := time.Since(start)
	if !sink.WaitDistinct(before+2*n, 10*time.Minute) {
		return nil, fmt.Errorf("gateway got %d of %d codes", sink.Distinct()-before, 2*n)
	}
	all := time.Since(start)
	submitRPS = float64(n) / all.Seconds()
	fig.add("submit_rpc_rps", float64(n)/rpcs.Seconds(), "rps")
	fig.add("submit_rps", submitRPS, "rps")
	c1, _ := dbStats(ctx, statsDB, statsName)
	fig.add("submit_db_commits_per_order", float64(c1.commits-c0.commits)/float64(n), "tx/order")
	cpuCores(fig, "submit", cpu0, cpuOf(), all)
	return ids, nil
}
