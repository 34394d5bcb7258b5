package app

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/icpverify/icpverify/pkg/iddoc"
	"github.com/icpverify/icpverify/pkg/pagetoken"
	"github.com/icpverify/icpverify/services/filing/internal/convert"
	"github.com/icpverify/icpverify/services/filing/internal/domain"
)

// listEngine is an Engine that only lists: orders newest first, as the engines keep them.
type listEngine struct {
	Engine
	orders []domain.Order
}

func (e *listEngine) ListOrders(_ context.Context, _ string, _ domain.State, after *domain.Position, limit int) ([]domain.Order, error) {
	var out []domain.Order
	for _, o := range e.orders {
		if (after == nil || after.Before(o.CreatedAt, o.ID)) && len(out) < limit {
			out = append(out, o)
		}
	}
	return out, nil
}

// longest4Byte is the longest run of a 4-byte letter (U+20000, CJK Extension B) that still makes a
// domain label of at most 63 characters in punycode: the most bytes a label can hold.
func longest4Byte(t testing.TB, rules domain.Rules, spec func(label string) domain.Spec) string {
	for n := domain.MaxLabelLength; n > 0; n-- {
		label := strings.Repeat("\U00020000", n)
		if _, err := rules.Normalize(spec(label)); err == nil {
			return label
		}
	}
	t.Fatal("no 4-byte label fits")
	return ""
}

// worstCaseOrder is the largest order the default limits allow: every text at its limit in 4-byte
// characters, 50 websites with the longest Unicode domains, 20 verifiers whose roles name them all,
// a cancel reason and a review comment at their limits in the history.
func worstCaseOrder(t testing.TB, id string, created time.Time) domain.Order {
	t.Helper()
	rules := domain.Rules{}
	big := func(n int) string { return strings.Repeat("\U00020000", n) }
	idNumber := strings.Repeat("9", 30) // the longest cleaned ID number (type Other)
	person := func(i int) *domain.Person {
		return &domain.Person{Name: big(domain.MaxPersonNameLength), IDType: iddoc.Other, IDNumber: idNumber,
			Phone: fmt.Sprintf("+86138%08d", i%domain.DefaultMaxVerifiers), EmergencyPhone: "+8613900000000"}
	}
	spec := func(domains []string) domain.Spec {
		s := domain.Spec{FilingType: domain.FirstFiling, SubjectName: big(domain.MaxSubjectNameLength), Principal: person(0)}
		for i, d := range domains {
			s.Websites = append(s.Websites, domain.Website{Domain: d, Name: big(domain.MaxWebsiteNameLength), Person: person(i)})
		}
		return s
	}
	label := longest4Byte(t, rules, func(l string) domain.Spec { return spec([]string{l + ".cn"}) })
	var domains []string
	for i := range domain.DefaultMaxWebsites {
		// Three long labels and a short distinct one: 4 x 63 + 3 dots = 255 > 253, so three and the rest.
		domains = append(domains, fmt.Sprintf("%s.%s.%s.w%d", label, label, label, i))
	}
	s, err := rules.Normalize(spec(domains))
	if err != nil {
		t.Fatalf("worst-case spec: %v", err)
	}
	o := domain.Order{ID: id, Spec: s, CreatedAt: created, Verifiers: rules.Verifiers(s)}
	o.Move(created, domain.StateDraft, domain.ActorPortal, "created")
	o.Move(created, domain.StateAwaitingVerification, domain.ActorPortal, "submission 1: 20 verifier(s)")
	o.Move(created, domain.StateUnderReview, domain.ActorVerification, "")
	o.Move(created, domain.StateRejected, domain.ActorAdministration, big(domain.MaxCommentLength))
	o.History = append(o.History, domain.StateChange{Reason: big(domain.MaxReasonLength)}) // a cancel's reason, for the bound
	if len(o.Verifiers) != domain.DefaultMaxVerifiers {
		t.Fatalf("%d verifiers", len(o.Verifiers))
	}
	return o
}

// TestWorstCaseOrderSize checks the arithmetic of list.go: the largest order the limits allow
// renders to about 125 KB (at most 200 KB), so a page of maxOrdersPerPage+1 read orders stays under 16 MiB.
func TestWorstCaseOrderSize(t *testing.T) {
	o := worstCaseOrder(t, "ord_1", time.Now())
	size := proto.Size(convert.Order(o))
	t.Logf("worst-case order: %d bytes rendered; %d orders read per page: %.1f MB", size, maxOrdersPerPage+1,
		float64(size*(maxOrdersPerPage+1))/1e6)
	if size > 200_000 || size < 100_000 {
		t.Fatalf("worst-case order renders to %d bytes: update the arithmetic in list.go", size)
	}
	if (maxOrdersPerPage+1)*size > 16<<20 {
		t.Fatalf("a page reads up to %d bytes of orders", (maxOrdersPerPage+1)*size)
	}
}

// TestListPageBoundedByBytes: pages of worst-case orders end at maxPageBytes, the token resumes
// after the last order shown, and paging shows every order once; small orders fill maxOrdersPerPage.
func TestListPageBoundedByBytes(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	eng := &listEngine{}
	for i := range 30 {
		eng.orders = append(eng.orders, worstCaseOrder(t, fmt.Sprintf("ord_%03d", i), t0.Add(-time.Duration(i)*time.Second)))
	}
	a := New(eng, Config{})
	var seen []string
	token, pages := "", 0
	for {
		page, next, err := a.ListOrders(ctx, testActor, domain.StateUnspecified, pagetoken.MaxSize, token)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		bytes := 0
		for _, o := range page {
			bytes += proto.Size(o)
			seen = append(seen, o.GetOrderId())
		}
		if len(page) == 0 || bytes > maxPageBytes {
			t.Fatalf("page %d: %d orders, %d bytes (limit %d)", pages, len(page), bytes, maxPageBytes)
		}
		if token = next; token == "" {
			break
		}
	}
	want := make([]string, len(eng.orders))
	for i, o := range eng.orders {
		want[i] = o.ID
	}
	if !slices.Equal(seen, want) || pages < 3 {
		t.Fatalf("%d pages showed %v, want %v", pages, seen, want)
	}

	// Small orders: a page asked for pagetoken.MaxSize holds maxOrdersPerPage.
	eng.orders = nil
	for i := range maxOrdersPerPage + 10 {
		eng.orders = append(eng.orders, domain.Order{ID: fmt.Sprintf("ord_%03d", i), CreatedAt: t0.Add(-time.Duration(i) * time.Second)})
	}
	page, next, err := a.ListOrders(ctx, testActor, domain.StateUnspecified, pagetoken.MaxSize, "")
	if err != nil || len(page) != maxOrdersPerPage || next == "" {
		t.Fatalf("page of %d small orders, next %q, %v; want %d", len(page), next, err, maxOrdersPerPage)
	}
}

// testActor is the portal these tests act as.
var testActor = domain.Actor{ID: "apikey:test", Tenant: "test"}

// TestWorstCaseAppOrderSize: an order of the most APPs with the longest names and three platform
// ids of the longest packages each (and the HK/Macau cards at their longest) stays within the bound
// TestWorstCaseOrderSize checks for websites.
func TestWorstCaseAppOrderSize(t *testing.T) {
	rules := domain.Rules{}
	pkg := func(i, p int) string {
		s := fmt.Sprintf("c%d.p%d.", i, p)
		return s + strings.Repeat("a", domain.MaxPackageLength-len(s))
	}
	person := func(i int) *domain.Person {
		return &domain.Person{Name: strings.Repeat("\U00020000", domain.MaxPersonNameLength), IDType: iddoc.HKMacaoPermit,
			IDNumber: "H0123456789", HKMacaoIDNumber: "AB123456(9)", Phone: fmt.Sprintf("+86138%08d", i%domain.DefaultMaxVerifiers),
			EmergencyPhone: "+8613900000000"}
	}
	s := domain.Spec{FilingType: domain.FirstFiling, SubjectName: strings.Repeat("\U00020000", domain.MaxSubjectNameLength),
		Principal: person(0), Province: "ZJ"}
	for i := range domain.DefaultMaxWebsites {
		s.Services = append(s.Services, domain.Service{Kind: domain.KindApp, Person: person(i),
			Name: fmt.Sprint(i) + strings.Repeat("\U00020000", domain.MaxWebsiteNameLength-len(fmt.Sprint(i))),
			AppIDs: []domain.AppID{{Platform: domain.PlatformAndroid, ID: pkg(i, 1)}, {Platform: domain.PlatformIOS, ID: pkg(i, 2)},
				{Platform: domain.PlatformHarmony, ID: pkg(i, 3)}}})
	}
	n, err := rules.Normalize(s)
	if err != nil {
		t.Fatalf("worst-case APP spec: %v", err)
	}
	o := domain.Order{ID: "ord_1", Spec: n, Verifiers: rules.Verifiers(n)}
	size := proto.Size(convert.Order(o))
	t.Logf("worst-case APP order: %d bytes rendered", size)
	if size > 200_000 {
		t.Fatalf("worst-case APP order renders to %d bytes: update the arithmetic in list.go", size)
	}
}
