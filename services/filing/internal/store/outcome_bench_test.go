package store

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
)

// BenchmarkMarkVerified compares what one MarkVerified costs filing's PostgreSQL store when the relay
// sends its claim's calls as single calls (32 at a time, as a relay replica does: the group commit
// gathers them) with one batch call of 100 (VerificationOutcomes, the MarkVerifiedBatch path). The
// figure is ns/op per MarkVerified; the gRPC hop the batch also saves is not in it.
func BenchmarkMarkVerified(b *testing.B) {
	const perRound = 100
	for _, mode := range []string{"single32", "batch100"} {
		b.Run(mode, func(b *testing.B) {
			s, _ := newOutcomeStore(b)
			ctx := context.Background()
			rounds := 0
			for b.Loop() {
				b.StopTimer()
				ids := submitted(b, s, perRound)
				reqs := make([]proto.Message, perRound)
				for i, id := range ids {
					reqs[i] = &filingv1.MarkVerifiedRequest{RequestId: fmt.Sprintf("mv-%d-%d", rounds, i), OrderId: id, Submission: 1}
				}
				rounds++
				b.StartTimer()
				if mode == "batch100" {
					res, err := s.VerificationOutcomes(ctx, reqs)
					if err != nil {
						b.Fatal(err)
					}
					for _, r := range res {
						if r.Err != nil {
							b.Fatal(r.Err)
						}
					}
					continue
				}
				sem := make(chan struct{}, 32)
				var wg sync.WaitGroup
				for _, req := range reqs {
					sem <- struct{}{}
					wg.Go(func() {
						defer func() { <-sem }()
						if _, err := s.MarkVerified(ctx, req.(*filingv1.MarkVerifiedRequest)); err != nil {
							b.Error(err)
						}
					})
				}
				wg.Wait()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(rounds*perRound), "ns/markverified")
		})
	}
}
