package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
)

// jsonOpts: field names as in the protos (snake_case), the same spelling the order files use.
var jsonOpts = protojson.MarshalOptions{Multiline: true, Indent: "  ", UseProtoNames: true}

// emit prints a response: protojson with --output json, else the text renderer.
func (a *app) emit(m proto.Message, text func(w io.Writer)) error {
	if a.json() {
		b, err := jsonOpts.Marshal(m)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(a.stdout, string(b))
		return err
	}
	tw := newTab(a.stdout)
	text(tw)
	return tw.Flush()
}

// rawJSON is protojson of one message, for documents that combine several responses.
func rawJSON(m proto.Message) json.RawMessage {
	if m == nil {
		return nil
	}
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		return nil
	}
	return b
}

func (a *app) emitJSON(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(a.stdout, string(b))
	return err
}

func newTab(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }

// fmtTime shows a timestamp in local time, with how far away it is when that helps.
func fmtTime(ts *timestamppb.Timestamp) string {
	if ts == nil || (ts.GetSeconds() == 0 && ts.GetNanos() == 0) {
		return "-"
	}
	return ts.AsTime().Local().Format("2006-01-02 15:04:05 MST")
}

func fmtDeadline(ts *timestamppb.Timestamp) string {
	if ts == nil || (ts.GetSeconds() == 0 && ts.GetNanos() == 0) {
		return "-"
	}
	d := time.Until(ts.AsTime()).Round(time.Second)
	rel := "passed " + (-d).String() + " ago"
	if d >= 0 {
		rel = "in " + d.String()
	}
	return fmtTime(ts) + " (" + rel + ")"
}

func orDash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}

// orderSummary prints the head of an order: id, state, type, subject, deadline, verifiers.
func orderSummary(w io.Writer, o *filingv1.Order) {
	state := shortEnum(o.GetState())
	if o.GetReturnReason() != filingv1.ReturnReason_RETURN_REASON_UNSPECIFIED {
		state += " (" + shortEnum(o.GetReturnReason()) + ")"
	}
	fmt.Fprintf(w, "order\t%s\n", o.GetOrderId())
	fmt.Fprintf(w, "state\t%s\n", state)
	spec := o.GetSpec()
	fmt.Fprintf(w, "filing type\t%s\n", shortEnum(spec.GetFilingType()))
	subject := orDash(spec.GetSubjectName())
	if spec.GetSubjectType() != filingv1.SubjectType_SUBJECT_TYPE_UNSPECIFIED {
		subject += " (" + shortEnum(spec.GetSubjectType()) + ")"
	}
	if spec.GetSubjectId() != "" {
		subject += "  subject_id " + spec.GetSubjectId()
	}
	fmt.Fprintf(w, "subject\t%s\n", subject)
	if spec.GetProvince() != "" {
		fmt.Fprintf(w, "province\t%s\n", spec.GetProvince())
	}
	if p := spec.GetPrincipal(); p != nil {
		fmt.Fprintf(w, "principal\t%s  %s\n", p.GetName(), p.GetPhone())
	}
	for _, site := range spec.GetWebsites() {
		person := ""
		if p := site.GetPerson(); p != nil {
			person = "  " + p.GetName() + "  " + p.GetPhone()
		}
		fmt.Fprintf(w, "website\t%s%s\n", site.GetDomain(), person)
	}
	for _, sv := range spec.GetServices() {
		person := ""
		if p := sv.GetPerson(); p != nil {
			person = "  " + p.GetName() + "  " + p.GetPhone()
		}
		fmt.Fprintf(w, "%s\t%s%s\n", strings.ToLower(shortEnum(sv.GetKind())), serviceLabel(sv), person)
	}
	if o.GetSubmission() > 0 {
		fmt.Fprintf(w, "submission\t%d\n", o.GetSubmission())
	}
	if o.GetDeadlineAt() != nil {
		fmt.Fprintf(w, "deadline\t%s\n", fmtDeadline(o.GetDeadlineAt()))
	}
	for i, v := range o.GetVerifiers() {
		label := ""
		if i == 0 {
			label = "verifiers"
		}
		fmt.Fprintf(w, "%s\t%s  %s\n", label, v.GetPhoneMasked(), strings.Join(v.GetRoles(), ", "))
	}
}

func historyLines(w io.Writer, o *filingv1.Order) {
	if len(o.GetHistory()) == 0 {
		return
	}
	fmt.Fprintln(w, "history")
	for _, h := range o.GetHistory() {
		fmt.Fprintf(w, "  %s\t%s -> %s\t%s\t%s\n", fmtTime(h.GetAt()), fromState(h.GetFrom()), shortEnum(h.GetTo()),
			orDash(h.GetActor()), h.GetReason())
	}
}

// fromState shows the start of a transition; an order's creation has no previous state.
func fromState(s filingv1.OrderState) string {
	if s == filingv1.OrderState_ORDER_STATE_UNSPECIFIED {
		return "-"
	}
	return shortEnum(s)
}

// serviceLabel is what identifies a service within its kind, for the order's lines and lists.
func serviceLabel(sv *filingv1.Service) string {
	switch sv.GetKind() {
	case filingv1.ServiceKind_SERVICE_KIND_WEBSITE:
		return sv.GetDomain()
	case filingv1.ServiceKind_SERVICE_KIND_MINI_PROGRAM:
		return sv.GetName() + " (" + shortEnum(sv.GetMiniProgramPlatform()) + " " + sv.GetMiniProgramAppId() + ")"
	case filingv1.ServiceKind_SERVICE_KIND_QUICK_APP:
		return sv.GetName() + " (" + sv.GetQuickAppPackage() + ")"
	}
	var ids []string
	for _, id := range sv.GetAppPlatforms() {
		ids = append(ids, shortEnum(id.GetPlatform())+" "+id.GetPackageOrBundleId())
	}
	return sv.GetName() + " (" + strings.Join(ids, ", ") + ")"
}
