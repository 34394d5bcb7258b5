package server_test

import (
	"context"
	"strings"
	"testing"

	"github.com/icpverify/icpverify/services/sms-dispatch/providertest"
	"github.com/icpverify/icpverify/services/sms-dispatch/server"
)

// The primary's gateway is down (its listener closed): the message goes out through the second
// provider of --sms-providers, and GetMessage names it.
func TestRunMemoryFailover(t *testing.T) {
	ali := providertest.NewAliyun("LTAI5tFailover", "Wn4Lb7Xc2Vd5Qm8Rt3Yz6Kp1", "ICP备案", "SMS_200300400", "code")
	aliURL := ali.URL()
	ali.Close()
	tc := providertest.NewTencent("AKIDFailover", "Lb7Xc2Vd5Qm8Rt3Yz6Kp1Wn4", "1400112233", "ICP备案", "2233445", 1)
	t.Cleanup(tc.Close)
	client := run(t, "--store", "memory", "--sms-providers", "aliyun,tencent",
		"--aliyun-endpoint", aliURL, "--aliyun-access-key-id", "LTAI5tFailover", "--aliyun-access-key-secret", "Wn4Lb7Xc2Vd5Qm8Rt3Yz6Kp1",
		"--aliyun-sign-name", "ICP备案", "--aliyun-template-code", "SMS_200300400",
		"--tencent-endpoint", tc.URL(), "--tencent-secret-id", "AKIDFailover", "--tencent-secret-key", "Lb7Xc2Vd5Qm8Rt3Yz6Kp1Wn4",
		"--tencent-sdk-app-id", "1400112233", "--tencent-sign-name", "ICP备案", "--tencent-template-id", "2233445")
	m := sendAndWait(t, client)
	got := tc.Accepted()
	if m.GetProvider() != "tencent" || !m.GetRedacted() || len(got) != 1 || got[0].MessageID != "vc-e2e-1" || got[0].Code() != "123456" {
		t.Fatalf("sent message = %v, tencent accepted %+v", m, got)
	}
}

func TestFailoverFlagValidation(t *testing.T) {
	base := []string{"--database-url", "postgres://x"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{append(base, "--sms-providers", "console,console"), `--sms-providers names "console" twice`},
		{append(base, "--sms-providers", "console,carrier-pigeon"), `--sms-provider "carrier-pigeon"`},
		{append(base, "--sms-providers", "console,aliyun"), "--aliyun-access-key-id and --aliyun-access-key-secret are required"},
		{append(base, "--sms-providers", "console,webhook", "--webhook-url", "http://gw", "--breaker-failures", "0"), "--breaker-failures"},
		{append(base, "--sms-providers", "console,webhook", "--webhook-url", "http://gw", "--redeliver-tries", "-1"), "--redeliver-tries must not be negative"},
	} {
		err := server.Run(context.Background(), tc.args)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Run(%v) = %v, want an error about %s", tc.args, err, tc.want)
		}
	}
}
