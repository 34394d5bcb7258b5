package main

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	smsv1 "github.com/icpverify/icpverify/pkg/gen/icp/smsdispatch/v1"

	"github.com/icpverify/icpverify/bench/internal/suite"
)

func smsDispatch(ctx context.Context, o options, fig *figures, sink *suite.Sink, client func(int64) smsv1.SmsDispatchServiceClient) error {
	n := int64(o.smsMessages)
	logf("SMS dispatch: %d SendMessage calls (%d at once), counted at the gateway", n, o.smsClients)
	before := sink.Distinct()
	batches0 := sink.Batches()
	conns0 := sink.Conns()
	c0, _ := dbStats(ctx, statsDB, statsName)
	cpu0 := cpuOf()
	start := time.Now()
	if err := sendSMSLoad(ctx, o, client); err != nil {
		return err
	}
	accepted := time.Since(start)
	if !sink.WaitDistinct(before+n, 5*time.Minute) {
		return fmt.Errorf("gateway got %d of %d messages", sink.Distinct()-before, n)
	}
	all := time.Since(start)
	fig.add("sms_send_rpc_rps", float64(n)/accepted.Seconds(), "rps")
	fig.add("sms_dispatch_per_s", float64(n)/all.Seconds(), "msg/s")
	fig.target("sms_dispatch_per_s", float64(n)/all.Seconds(), dispatchTarget, "msg/s")
	c1, _ := dbStats(ctx, statsDB, statsName)
	fig.add("sms_db_commits_per_msg", float64(c1.commits-c0.commits)/float64(n), "tx/msg")
	fig.add("sms_gateway_tcp_conns", float64(sink.Conns()-conns0), "conns")
	if b := sink.Batches() - batches0; b > 0 {
		fig.add("sms_msgs_per_gateway_batch", float64(n)/float64(b), "msg/POST")
	}
	cpuCores(fig, "sms", cpu0, cpuOf(), all)
	return nil
}

// sendSMSLoad is the load of every SMS phase: --sms-messages SendMessage calls of a verification
// code, --sms-clients at once, each to its own phone and order (every per-phone cap is off anyway).
func sendSMSLoad(ctx context.Context, o options, client func(int64) smsv1.SmsDispatchServiceClient) error {
	expire := timestamppb.New(time.Now().Add(24 * time.Hour))
	deadline := time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)
	res, err := runN(ctx, o.smsClients, int64(o.smsMessages), func(ctx context.Context, i int64) error {
		_, err := client(i).SendMessage(ctx, &smsv1.SendMessageRequest{
			MessageId: fmt.Sprintf("bench-sms-%d", i), Phone: fmt.Sprintf("+86137%08d", i),
			Template:   smsv1.Template_TEMPLATE_VERIFICATION_CODE,
			Params:     map[string]string{"code": fmt.Sprintf("%06d", i%1000000), "deadline": deadline},
			ExpireTime: expire, OrderId: fmt.Sprintf("ord_benchsms_%d", i),
		})
		return err
	})
	if err != nil {
		return fmt.Errorf("SendMessage (%d failed): %w", res.errs, err)
	}
	return nil
}
