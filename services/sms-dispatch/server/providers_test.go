package server_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/icpverify/icpverify/services/sms-dispatch/providertest"
	"github.com/icpverify/icpverify/services/sms-dispatch/server"
)

func TestCloudFlagValidation(t *testing.T) {
	base := []string{"--database-url", "postgres://x"}
	aliyun := append(append([]string(nil), base...), "--sms-provider", "aliyun", "--aliyun-access-key-id", "LTAI5tK",
		"--aliyun-access-key-secret", "Zr7Lm4Wt1Nb8Xc3Vd6", "--aliyun-sign-name", "ICP备案", "--aliyun-template-code", "SMS_1")
	tencent := append(append([]string(nil), base...), "--sms-provider", "tencent", "--tencent-secret-id", "AKIDx",
		"--tencent-secret-key", "Pz8Qw3Er6Ty1Ui4Op7", "--tencent-sdk-app-id", "1400", "--tencent-sign-name", "ICP备案",
		"--tencent-template-id", "1")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{slices.Concat(base, []string{"--sms-provider", "aliyun"}), "--aliyun-access-key-id and --aliyun-access-key-secret are required"},
		{slices.Concat(base, []string{"--sms-provider", "aliyun"}), "--aliyun-sign-name and --aliyun-template-code are required"},
		{slices.Concat(aliyun, []string{"--aliyun-endpoint", "dysmsapi"}), "--aliyun-endpoint must be an http(s) URL"},
		{slices.Concat(aliyun, []string{"--aliyun-template-params", "code=otp"}), "--aliyun-template-params"},
		{slices.Concat(aliyun, []string{"--provider-timeout", "0s"}), "--provider-timeout must be positive"},
		{slices.Concat(base, []string{"--sms-provider", "tencent"}), "--tencent-secret-id and --tencent-secret-key are required"},
		{slices.Concat(tencent, []string{"--tencent-template-params", "code=code"}), "--tencent-template-params"},
		{slices.Concat(tencent, []string{"--tencent-region", ""}), "--tencent-region, --tencent-sdk-app-id"},
	} {
		err := server.Run(context.Background(), tc.args)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Run(%v) = %v, want an error about %s", tc.args, err, tc.want)
		}
		if err != nil && (strings.Contains(err.Error(), "Zr7Lm4Wt1Nb8Xc3Vd6") || strings.Contains(err.Error(), "Pz8Qw3Er6Ty1Ui4Op7")) {
			t.Errorf("Run(%v) error names the secret: %v", tc.args, err)
		}
	}
}

// A placeholder secret is refused on PostgreSQL like any open default.
func TestCloudPlaceholderSecret(t *testing.T) {
	err := server.Run(context.Background(), []string{"--database-url", "postgres://x", "--seal-keys", "s1:" + strings.Repeat("3c", 32),
		"--sms-provider", "aliyun", "--aliyun-access-key-id", "LTAI5tK", "--aliyun-access-key-secret", "changeme",
		"--aliyun-sign-name", "ICP备案", "--aliyun-template-code", "SMS_1"})
	if err == nil || !strings.Contains(err.Error(), "--aliyun-access-key-secret") || strings.Contains(err.Error(), "changeme") {
		t.Fatalf("Run = %v, want the placeholder secret refused (by flag, not by value)", err)
	}
}

// A placeholder CMPP secret is refused on PostgreSQL too: anyone who read the example could log in
// as the SP at the carrier's gateway.
func TestCMPPPlaceholderSecret(t *testing.T) {
	err := server.Run(context.Background(), []string{"--database-url", "postgres://x", "--seal-keys", "s1:" + strings.Repeat("3c", 32),
		"--sms-provider", "cmpp", "--cmpp-addr", "127.0.0.1:7890", "--cmpp-source-addr", "901234", "--cmpp-secret", "example-secret",
		"--cmpp-src-id", "10690001"})
	if err == nil || !strings.Contains(err.Error(), "--cmpp-secret") || strings.Contains(err.Error(), "example-secret") {
		t.Fatalf("Run = %v, want the placeholder secret refused (by flag, not by value)", err)
	}
}

// The service sends through the aliyun provider to its fake, by flags alone.
func TestRunMemoryAliyun(t *testing.T) {
	fake := providertest.NewAliyun("LTAI5tServerTest", "Wn4Lb7Xc2Vd5Qm8Rt3Yz6Kp1", "ICP备案", "SMS_200300400", "code", "time")
	t.Cleanup(fake.Close)
	client := run(t, "--store", "memory", "--sms-provider", "aliyun", "--aliyun-endpoint", fake.URL(),
		"--aliyun-access-key-id", "LTAI5tServerTest", "--aliyun-access-key-secret", "Wn4Lb7Xc2Vd5Qm8Rt3Yz6Kp1",
		"--aliyun-sign-name", "ICP备案", "--aliyun-template-code", "SMS_200300400", "--aliyun-template-params", "code=code,time=deadline")
	m := sendAndWait(t, client)
	got := fake.Accepted()
	if m.GetProvider() != "aliyun" || !m.GetRedacted() || len(got) != 1 || got[0].MessageID != "vc-e2e-1" || got[0].Code() != "123456" {
		t.Fatalf("sent message = %v, accepted %+v", m, got)
	}
}

// The same through the tencent provider.
func TestRunMemoryTencent(t *testing.T) {
	fake := providertest.NewTencent("AKIDServerTest", "Lb7Xc2Vd5Qm8Rt3Yz6Kp1Wn4", "1400112233", "ICP备案", "2233445", 2)
	t.Cleanup(fake.Close)
	client := run(t, "--store", "memory", "--sms-provider", "tencent", "--tencent-endpoint", fake.URL(),
		"--tencent-secret-id", "AKIDServerTest", "--tencent-secret-key", "Lb7Xc2Vd5Qm8Rt3Yz6Kp1Wn4", "--tencent-sdk-app-id", "1400112233",
		"--tencent-sign-name", "ICP备案", "--tencent-template-id", "2233445", "--tencent-template-params", "code,deadline")
	m := sendAndWait(t, client)
	got := fake.Accepted()
	if m.GetProvider() != "tencent" || len(got) != 1 || got[0].MessageID != "vc-e2e-1" || got[0].Code() != "123456" || len(got[0].Ordered) != 2 {
		t.Fatalf("sent message = %v, accepted %+v", m, got)
	}
}
