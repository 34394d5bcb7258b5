package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/icpverify/icpverify/services/sms-dispatch/providertest"
)

// The primary provider's fake in the sms-failover drill (a benchmark credential, never a real one).
const (
	chaosAliyunKeyID  = "LTAI5tChaosDrill"
	chaosAliyunSecret = "Xc2Vd5Qm8Rt3Yz6Kp1Wn4Lb7"
)

// drillSMSFailover: sms-dispatch with --sms-providers=aliyun,webhook; the primary's gateway (the
// aliyun-protocol fake) is killed (its listener closed) mid-stream. Every code still arrives (through
// the webhook sink, the secondary), and no message goes out twice: a message id the sink sees twice
// (once mirrored from aliyun, once sent by the webhook) counts as duplicated.
func drillSMSFailover(o options) (result, error) {
	r := result{name: "sms-failover"}
	ali := providertest.NewAliyun(chaosAliyunKeyID, chaosAliyunSecret, "ICP备案", "SMS_480012345", "code")
	stopMirror := mirror(ali, o.sink.URL)
	posts0, distinct0 := o.sink.Posts(), o.sink.Distinct()
	e, err := startEnv(o, map[string][]string{"sms-dispatch": {"--sms-providers=aliyun,webhook",
		"--aliyun-endpoint=" + ali.URL(), "--aliyun-access-key-id=" + chaosAliyunKeyID, "--aliyun-access-key-secret=" + chaosAliyunSecret,
		"--aliyun-sign-name=ICP备案", "--aliyun-template-code=SMS_480012345", "--provider-timeout=1s",
		"--breaker-failures=3", "--breaker-cooldown=1h"}})
	if err != nil {
		stopMirror()
		ali.Close()
		return r, err
	}
	defer e.close()
	d := e.driver(true, true)
	var before int
	v, conv, err := streamDuring(e, d, o.clients, 6*time.Second, func() error {
		time.Sleep(2 * time.Second)
		before = len(ali.Accepted())
		logf("killing the primary provider's gateway (aliyun fake) after %d messages", before)
		ali.Close()
		return nil
	})
	stopMirror()
	if err != nil {
		return r, err
	}
	report(r.name, d, v)
	reposts := (o.sink.Posts() - posts0) - (o.sink.Distinct() - distinct0)
	r.orders, r.lost, r.dup = len(d.orderList()), v.lost, v.dup+int(reposts)
	r.failedRPCs = d.failed("")
	r.recovery = conv.Seconds()
	viaPrimary := len(ali.Accepted())
	r.extra = fmt.Sprintf("via_primary=%d via_secondary=%d cross_provider_dups=%d", viaPrimary,
		int(o.sink.Distinct()-distinct0)-viaPrimary, reposts)
	if before == 0 {
		return r, fmt.Errorf("the primary took no message before it was killed")
	}
	return r, nil
}

// mirror posts each message the aliyun fake accepted to the webhook sink (as the webhook provider
// would), so that the driver finds every code in one place; stop flushes and ends it.
func mirror(ali *providertest.Aliyun, sinkURL string) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	sent := 0
	flush := func() {
		acc := ali.Accepted()
		for ; sent < len(acc); sent++ {
			a := acc[sent]
			body, _ := json.Marshal(map[string]string{"message_id": a.MessageID, "phone": a.Phone, "text": "code " + a.Code(), "sender": "12381"})
			req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, sinkURL, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			} else {
				logf("mirror: %v", err)
			}
		}
	}
	wg.Go(func() {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				flush()
				return
			case <-t.C:
				flush()
			}
		}
	})
	return func() {
		select {
		case <-done:
		default:
			close(done)
		}
		wg.Wait()
	}
}
