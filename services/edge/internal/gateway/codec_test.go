package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
)

// stdJSON is the marshaler the codec stands in for: the gateway's options on runtime.JSONPb.
func stdJSON() *runtime.JSONPb {
	return &runtime.JSONPb{MarshalOptions: protojson.MarshalOptions{EmitUnpopulated: true},
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false}}
}

func anyOf(t testing.TB, m protoadapt.MessageV1) *anypb.Any {
	a, err := anypb.New(protoadapt.MessageV2Of(m))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// Every answer is byte for byte what protojson writes (same binary, so the same comma spacing):
// the ones the fast path writes, and the ones it hands to protojson.
func TestCodecMarshalIsProtojson(t *testing.T) {
	withUnknown := &verificationv1.VerifyResponse{Result: verificationv1.VerifyResult_VERIFY_RESULT_ALL_PASSED, OrderId: "ord_1"}
	withUnknown.ProtoReflect().SetUnknown([]byte{0xa8, 0x1f, 0x01}) // field 501, varint 1
	status := func(details ...*anypb.Any) *spb.Status {
		return &spb.Status{Code: 5, Message: "该条验证库里找不到记录 \"x\" \\ \n\t\u0001 <&> \u2028", Details: details}
	}
	fast := []proto.Message{
		&verificationv1.VerifyResponse{},
		&verificationv1.VerifyResponse{Result: verificationv1.VerifyResult_VERIFY_RESULT_PASSED_WAITING_FOR_OTHERS, OrderId: "ord_01a2",
			MessageZh: "您的短信核验完成，请等待其他核验人进行短信核验", MessageEn: "Your verification is complete; \"others\" pending."},
		&verificationv1.VerifyResponse{Result: verificationv1.VerifyResult(99)}, // a number protojson writes as a number
		withUnknown,
		&spb.Status{},
		status(),
		status(anyOf(t, &errdetails.ErrorInfo{Reason: "VERIFICATION_NOT_MATCHED", Domain: "icp.verify"})),
		status(anyOf(t, &errdetails.ErrorInfo{Reason: "R", Domain: "d", Metadata: map[string]string{"z": "1", "a": "2", "m\"": "\n"}}),
			anyOf(t, &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
				{Field: "phone", Description: "bad", Reason: "INVALID_PHONE"}, {Field: "code"}}})),
		&verificationv1.ResendCodeResponse{Resend: &verificationv1.Resend{OrderId: "ord_1", ResendsLeft: 1}},
		&verificationv1.ResendCodeResponse{}, // an unset message: null
	}
	slow := []proto.Message{
		status(anyOf(t, &errdetails.RetryInfo{RetryDelay: durationpb.New(1500 * time.Millisecond)})), // a Duration inside
		status(&anypb.Any{TypeUrl: "type.googleapis.com/nope.Unknown", Value: []byte{1}}),            // protojson's error
		&verificationv1.VerifyResponse{OrderId: "bad \xff utf-8"},                                    // protojson's error
		&filingv1.GetOrderResponse{Order: &filingv1.Order{OrderId: "ord_1", CreateTime: timestamppb.New(time.Unix(1e9, 0))}},
	}
	c := newCodec(stdJSON())
	for i, m := range append(fast, slow...) {
		got, gotErr := c.Marshal(m)
		want, wantErr := stdJSON().Marshal(m)
		if !bytes.Equal(got, want) || (gotErr == nil) != (wantErr == nil) {
			t.Errorf("%T #%d:\n got %s (%v)\nwant %s (%v)", m, i, got, gotErr, want, wantErr)
		}
		if _, ok := appendMessage(nil, m.ProtoReflect(), ""); ok != (i < len(fast)) {
			t.Errorf("%T #%d: fast path taken %v, want %v", m, i, ok, i < len(fast))
		}
	}
}

// decodeBody decodes body into a fresh m as the generated handlers do: Decode (io.EOF: an empty
// body), then Token, which must find nothing after the value.
func decodeBody(m runtime.Marshaler, body string, into proto.Message) error {
	dec := m.NewDecoder(strings.NewReader(body))
	if err := dec.Decode(into); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if td, ok := dec.(interface{ Token() (json.Token, error) }); ok {
		if _, err := td.Token(); !errors.Is(err, io.EOF) {
			return errors.New("unexpected data after request body")
		}
	}
	return nil
}

var bodySeeds = []string{
	`{"phone":"+8613500000001","code":"123456","idTail":"007919"}`,
	" \n{ \"phone\" : \"138\" ,\t\"id_tail\":\"12345X\" , \"linkToken\":\"tok\"}\r\n ",
	`{"code":"1","link_token":"t"}`, `{}`, ` { } `, ``, `   `,
	`{"phone":"中文号码","code":"１２３"}`,
	`{"phone":"a","phone":"b"}`, `{"idTail":"a","id_tail":"b"}`, // duplicates
	`{"phnoe":"1"}`, `{"Phone":"1"}`, `{"":"1"}`, // unknown fields
	`{"phone":null}`, `{"phone":1}`, `{"phone":true}`, `{"phone":{}}`, `{"phone":["1"]}`,
	`{"phone":"\u0031\n"}`, `{"phone":"a\"b"}`, "{\"phone\":\"a\tb\"}", "{\"phone\":\"\xff\"}",
	`{"phone":"1"} x`, `{"phone":"1"}{}`, `{"phone":"1"},`, `{"phone":"1",}`, `{"phone" "1"}`,
	`{"phone":"1"`, `{"phone":`, `{`, `[1,2]`, `"x"`, `null`, `1`, `{,}`, `{"phone":"1"}}`,
	`{"requestId":"r1","phone":"+8613800000000","idTail":"12345X"}`,
}

// A body decodes as protojson decodes it, or fails with protojson's error: the fast path only
// takes the bodies it reads exactly, and gives the rest to protojson unchanged.
func TestCodecDecodeIsProtojson(t *testing.T) {
	for _, body := range bodySeeds {
		checkDecode(t, body)
	}
	// The plain bodies take the fast path (the differential test is not protojson against itself).
	for _, body := range bodySeeds[:4] {
		d := newCodec(stdJSON()).NewDecoder(strings.NewReader(body)).(*bodyDecoder)
		if err := d.Decode(&verificationv1.VerifyRequest{}); err != nil || d.std != nil {
			t.Errorf("%q: fast path not taken (%v)", body, err)
		}
	}
}

func checkDecode(t *testing.T, body string) {
	t.Helper()
	for _, newMsg := range []func() proto.Message{
		func() proto.Message { return &verificationv1.VerifyRequest{} },
		func() proto.Message { return &verificationv1.ResendCodeRequest{} },
	} {
		got, want := newMsg(), newMsg()
		gotErr := decodeBody(newCodec(stdJSON()), body, got)
		wantErr := decodeBody(stdJSON(), body, want)
		if (gotErr == nil) != (wantErr == nil) || (gotErr != nil && gotErr.Error() != wantErr.Error()) {
			t.Errorf("%T %q: error %v, protojson %v", got, body, gotErr, wantErr)
		} else if wantErr == nil && !proto.Equal(got, want) {
			t.Errorf("%T %q: got %v, protojson %v", got, body, got, want)
		}
	}
}

func FuzzCodecDecode(f *testing.F) {
	for _, s := range bodySeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) { checkDecode(t, body) })
}
