// Package storetest is the one behaviour suite both storage engines of sms-dispatch must pass: the
// PostgreSQL store (package store) and the in-memory one (package memstore). Every test goes through
// the interfaces the gRPC handlers and the dispatcher use, and the concurrency tests (concurrent
// creates, racing cap reservations, two dispatchers) run on both engines: the memory engine must be
// just as exact.
package storetest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/icpverify/icpverify/pkg/clock"
	"github.com/icpverify/icpverify/pkg/outbox"
	"github.com/icpverify/icpverify/pkg/seal"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/dispatcher"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/grpcapi"
)

// Store is everything the service asks of an engine.
type Store interface {
	grpcapi.Store
	dispatcher.Store
	RecordReceipt(ctx context.Context, r domain.Receipt) (domain.ReceiptOutcome, error)
	RecordReceipts(ctx context.Context, rs []domain.Receipt) ([]domain.ReceiptOutcome, error)
	SetRedelivery(r domain.Redelivery)
}

// Engine is one engine under test.
type Engine struct {
	Store Store
	// Outbox is the queue the engine writes the delivery reports of failed messages to.
	Outbox outbox.Queue
}

// SealKeys is the keyring the PostgreSQL engine seals the texts with in tests.
func SealKeys() *seal.Keyring { return sealKeys }

var sealKeys = func() *seal.Keyring {
	k, err := seal.Parse("s1:" + strings.Repeat("5a", seal.KeyBytes))
	if err != nil {
		panic(err)
	}
	return k
}()

// T0 is the suite's starting instant (10:00 in UTC+8).
var T0 = time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC)

// Run runs the whole suite; newEngine returns a fresh, empty engine for each test.
func Run(t *testing.T, newEngine func(t *testing.T, clk *clock.Fake) Engine) {
	tests := []struct {
		name string
		fn   func(t *testing.T, e *env)
	}{
		{"CreateIsIdempotentByMessageID", testCreateIsIdempotentByMessageID},
		{"ConcurrentCreateStoresOnce", testConcurrentCreateStoresOnce},
		{"ConcurrentThreadsKeepOnlyTheNewest", testConcurrentThreadsKeepOnlyTheNewest},
		{"GetNotFound", testGetNotFound},
		{"ListPagesNewestFirst", testListPagesNewestFirst},
		{"ConcurrentClaimsNeverShare", testConcurrentClaimsNeverShare},
		{"ReserveCapUnderRace", testReserveCapUnderRace},
		{"ReserveRefusesStaleClaim", testReserveRefusesStaleClaim},
		{"SentRedactsAndFailedReleasesSlot", testSentRedactsAndFailedReleasesSlot},
		{"SentKeepsTextInDevelopment", testSentKeepsTextInDevelopment},
		{"NewMessageSupersedesOlderQueued", testNewMessageSupersedesOlderQueued},
		{"LateOlderMessageNeverSent", testLateOlderMessageNeverSent},
		{"StoredBeforeSendAndRedactedAfter", testStoredBeforeSendAndRedactedAfter},
		{"RepeatSendMessageDoesNotSendTwice", testRepeatSendMessageDoesNotSendTwice},
		{"ProviderFailureRetriedWithBackoff", testProviderFailureRetriedWithBackoff},
		{"GivesUpAfterMaxAttempts", testGivesUpAfterMaxAttempts},
		{"ExpiredFails", testExpiredFails},
		{"CapReschedulesThenRateLimits", testCapReschedulesThenRateLimits},
		{"ResendSupersedesHeldMessage", testResendSupersedesHeldMessage},
		{"StalledWorkerDoesNotSend", testStalledWorkerDoesNotSend},
		{"TwoDispatchersSendEachOnce", testTwoDispatchersSendEachOnce},
		{"CapHoldsWithTwoDispatchers", testCapHoldsWithTwoDispatchers},
		{"CrashAfterAcceptanceResendsWithSameID", testCrashAfterAcceptanceResendsWithSameID},
		{"CapsOffSendsWithoutReservation", testCapsOffSendsWithoutReservation},
		{"StalledWorkerDoesNotSendCapsOff", testStalledWorkerDoesNotSendCapsOff},
		{"BatchClaimAndMarkSent", testBatchClaimAndMarkSent},
		{"CappedFailureReportsOnce", testCappedFailureReportsOnce},
		{"ExpiredFailureReportsOnce", testExpiredFailureReportsOnce},
		{"ProviderRefusalReportsWhenFinal", testProviderRefusalReportsWhenFinal},
		{"NothingToSendReportsOnce", testNothingToSendReportsOnce},
		{"ReceiptDeliveredOnceAndReported", testReceiptDeliveredOnceAndReported},
		{"ReceiptFinalStateNeverOverwritten", testReceiptFinalStateNeverOverwritten},
		{"ReceiptBeforeSentIsParkedAndApplied", testReceiptBeforeSentIsParkedAndApplied},
		{"ReceiptUnknownIDChangesNothing", testReceiptUnknownIDChangesNothing},
		{"AtRiskSweepThenLateReceipt", testAtRiskSweepThenLateReceipt},
		{"BatchAppliesOneMessageInArrivalOrder", testBatchAppliesOneMessageInArrivalOrder},
		{"BatchMixesKnownUnknownAndParked", testBatchMixesKnownUnknownAndParked},
		{"BatchDuplicatesApplyOnce", testBatchDuplicatesApplyOnce},
		{"BatchRedeliversThenTakesEarlierDelivered", testBatchRedeliversThenTakesEarlierDelivered},
		{"ConcurrentBatchesApplyEachOnce", testConcurrentBatchesApplyEachOnce},
		{"HandOffsAreDurableAndFenced", testHandOffsAreDurableAndFenced},
		{"RedeliverUndeliveredThroughTheNext", testRedeliverUndeliveredThroughTheNext},
		{"RedeliverAtRiskThenLateDelivered", testRedeliverAtRiskThenLateDelivered},
		{"EarlierDeliveredCancelsRedelivery", testEarlierDeliveredCancelsRedelivery},
		{"RedeliveryEndsWithTheFinalTruth", testRedeliveryEndsWithTheFinalTruth},
		{"NoRedeliveryClosedSupersededOrOff", testNoRedeliveryClosedSupersededOrOff},
		{"IdempotentFirstProviderNeverGetsItAgain", testIdempotentFirstProviderNeverGetsItAgain},
		{"ConcurrentReceiptsAndDispatchersRedeliverOnce", testConcurrentReceiptsAndDispatchersRedeliverOnce},
		{"RedeliveryBarsProvidersThatMayHaveIt", testRedeliveryBarsProvidersThatMayHaveIt},
		{"CrashDuringRedeliveryNeverSendsTwiceToOne", testCrashDuringRedeliveryNeverSendsTwiceToOne},
		{"ParkedUndeliveredRedelivers", testParkedUndeliveredRedelivers},
		{"ConcurrentSweepsRedeliverOnce", testConcurrentSweepsRedeliverOnce},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clk := clock.NewFake(T0)
			tc.fn(t, &env{Engine: newEngine(t, clk), clock: clk})
		})
	}
}

// env is one test's engine and the fake clock it runs on, started at T0.
type env struct {
	Engine
	clock *clock.Fake
	seq   int32 // each message gets a higher sequence than the ones made before it
}

var ctx = context.Background()

// message returns a valid QUEUED message of order-1 created now, expiring after expire.
func (e *env) message(t *testing.T, id, phone string, expire time.Duration) domain.Message {
	t.Helper()
	now := e.clock.Now()
	e.seq++
	m, err := domain.NewMessage(domain.SendInput{MessageID: id, Phone: phone, Template: domain.TemplateVerificationCode,
		Params: map[string]string{"code": "123456"}, ExpireAt: now.Add(expire), OrderID: "order-1", Sequence: e.seq}, "ICP备案", now)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (e *env) create(t *testing.T, id, phone string, expire time.Duration) {
	t.Helper()
	e.createMsg(t, e.message(t, id, phone, expire))
}

func (e *env) createMsg(t *testing.T, m domain.Message) {
	t.Helper()
	if _, _, err := e.Store.Create(ctx, m); err != nil {
		t.Fatal(err)
	}
}

func (e *env) get(t *testing.T, id string) domain.Message {
	t.Helper()
	m, err := e.Store.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (e *env) claimOne(t *testing.T, lease time.Duration) domain.Message {
	t.Helper()
	msgs, err := e.Store.Claim(ctx, e.clock.Now(), lease, 1)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("claim: %v %v", msgs, err)
	}
	return msgs[0]
}
