package provider

import (
	"net/url"
	"testing"
	"time"
)

// Alibaba Cloud, "V3 request structure and signature" (help.aliyun.com/zh/sdk/product-overview/
// v3-request-structure-and-signature; English: alibabacloud.com/help/en/sdk/product-overview/
// v3-request-structure-and-signature), its worked example: ECS RunInstances, RPC style, the
// parameters in the query, an empty body, AccessKey YourAccessKeyId / YourAccessKeySecret.
func TestACS3DocumentedExample(t *testing.T) {
	query := url.Values{
		"ImageId":  {"win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd"},
		"RegionId": {"cn-shanghai"},
	}
	payloadHash := sha256Hex(nil)
	if payloadHash != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Fatalf("hashed payload %s", payloadHash)
	}
	date := ACS3Date(time.Date(2023, 10, 26, 10, 22, 32, 0, time.UTC))
	headers := map[string]string{
		"host":                  "ecs.cn-shanghai.aliyuncs.com",
		"x-acs-action":          "RunInstances",
		"x-acs-content-sha256":  payloadHash,
		"x-acs-date":            date,
		"x-acs-signature-nonce": "3156853299f313e23d1673dc12e1703d",
		"x-acs-version":         "2014-05-26",
	}
	canonical, signed := ACS3CanonicalRequest("POST", query, headers, payloadHash)
	wantCanonical := "POST\n/\nImageId=win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd&RegionId=cn-shanghai\n" +
		"host:ecs.cn-shanghai.aliyuncs.com\nx-acs-action:RunInstances\n" +
		"x-acs-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n" +
		"x-acs-date:2023-10-26T10:22:32Z\nx-acs-signature-nonce:3156853299f313e23d1673dc12e1703d\nx-acs-version:2014-05-26\n\n" +
		"host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version\n" +
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	if canonical != wantCanonical {
		t.Fatalf("canonical request\n%q\nwant\n%q", canonical, wantCanonical)
	}
	if got := sha256Hex([]byte(canonical)); got != "7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259" {
		t.Fatalf("hashed canonical request %s", got)
	}
	sig := ACS3Signature("YourAccessKeySecret", canonical)
	const want = "ACS3-HMAC-SHA256 Credential=YourAccessKeyId,SignedHeaders=host;x-acs-action;x-acs-content-sha256;" +
		"x-acs-date;x-acs-signature-nonce;x-acs-version,Signature=06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
	if got := ACS3Authorization("YourAccessKeyId", signed, sig); got != want {
		t.Fatalf("authorization\n%s\nwant\n%s", got, want)
	}
}

func TestACS3Encode(t *testing.T) {
	for in, want := range map[string]string{
		"a b*c~d":           "a%20b%2Ac~d",
		`{"code":"123456"}`: "%7B%22code%22%3A%22123456%22%7D",
		"ICP备案":             "ICP%E5%A4%87%E6%A1%88",
	} {
		if got := ACS3Encode(in); got != want {
			t.Errorf("ACS3Encode(%q) = %q, want %q", in, got, want)
		}
	}
}

// Tencent Cloud, "Signature v3" (tencentcloud.com/document/api/382/40467 for SMS; the same page
// under every product), its worked example: CVM DescribeInstances at 1551113065, SecretKey
// Gu5t9xGARNpq86cd98joQYCN3EXAMPLE, signed headers content-type;host.
func TestTC3DocumentedExample(t *testing.T) {
	payload := []byte(`{"Limit": 1, "Filters": [{"Values": ["\u672a\u547d\u540d"], "Name": "instance-name"}]}`)
	if got := sha256Hex(payload); got != "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064" {
		t.Fatalf("hashed payload %s", got)
	}
	canonical, signed := TC3CanonicalRequest(map[string]string{
		"Content-Type": "application/json; charset=utf-8",
		"Host":         "cvm.tencentcloudapi.com",
	}, payload)
	wantCanonical := "POST\n/\n\ncontent-type:application/json; charset=utf-8\nhost:cvm.tencentcloudapi.com\n\ncontent-type;host\n" +
		"35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
	if canonical != wantCanonical {
		t.Fatalf("canonical request\n%q\nwant\n%q", canonical, wantCanonical)
	}
	if got := sha256Hex([]byte(canonical)); got != "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031" {
		t.Fatalf("hashed canonical request %s", got)
	}
	if got := TC3CredentialScope("cvm", 1551113065); got != "2019-02-25/cvm/tc3_request" {
		t.Fatalf("credential scope %s (the date is UTC's, not UTC+8's 2019-02-26)", got)
	}
	sig := TC3Signature("Gu5t9xGARNpq86cd98joQYCN3EXAMPLE", "cvm", 1551113065, canonical)
	const want = "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE/2019-02-25/cvm/tc3_request, " +
		"SignedHeaders=content-type;host, Signature=72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
	if got := TC3Authorization("AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE", "cvm", 1551113065, signed, sig); got != want {
		t.Fatalf("authorization\n%s\nwant\n%s", got, want)
	}
}
