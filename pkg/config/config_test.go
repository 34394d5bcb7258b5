package config

import (
	"testing"
	"time"
)

func TestFlagsFromEnvironment(t *testing.T) {
	t.Setenv("GRPC_ADDR", "127.0.0.1:6000")
	t.Setenv("SHUTDOWN_TIMEOUT", "3s")
	t.Setenv("DATABASE_URL", "postgres://x@y/z")
	f := NewFlags("svc")
	c := RegisterCommon(f, "127.0.0.1:1", "svc")
	if err := f.Parse([]string{"--grpc-addr=127.0.0.1:7000"}); err != nil {
		t.Fatal(err)
	}
	if *c.GRPCAddr != "127.0.0.1:7000" {
		t.Errorf("command line must win over the environment: %s", *c.GRPCAddr)
	}
	if *c.ShutdownTimeout != 3*time.Second || *c.DatabaseURL != "postgres://x@y/z" || *c.DatabaseSchema != "svc" {
		t.Errorf("environment and defaults not applied: %v %s %s", *c.ShutdownTimeout, *c.DatabaseURL, *c.DatabaseSchema)
	}
	if err := c.Check(); err != nil {
		t.Errorf("Check: %v", err)
	}
}

func TestCheck(t *testing.T) {
	t.Setenv("DATABASE_URL", "") // the machine's own setting must not decide the case without a URL
	for _, tt := range []struct {
		args []string
		ok   bool
	}{
		{[]string{"--database-url=postgres://x@y/z"}, true},
		{nil, false}, // postgres needs a URL
		{[]string{"--store=memory"}, true},
		{[]string{"--store=sqlite", "--database-url=x"}, false},
	} {
		f := NewFlags("svc")
		c := RegisterCommon(f, "127.0.0.1:1", "svc")
		if err := f.Parse(tt.args); err != nil {
			t.Fatal(err)
		}
		if err := c.Check(); (err == nil) != tt.ok {
			t.Errorf("%v: Check() = %v, want ok=%v", tt.args, err, tt.ok)
		}
	}
}

func TestBadEnvironmentValue(t *testing.T) {
	t.Setenv("SHUTDOWN_TIMEOUT", "soon")
	f := NewFlags("svc")
	RegisterCommon(f, "127.0.0.1:1", "svc")
	if err := f.Parse(nil); err == nil {
		t.Fatal("an unparsable SHUTDOWN_TIMEOUT was accepted")
	}
}

func TestSecurityCheck(t *testing.T) {
	for _, tt := range []struct {
		args []string
		ok   bool
	}{
		{nil, true},
		{[]string{"--tls-cert-file=c"}, false},
		{[]string{"--tls-client-ca-file=ca"}, false},
		{[]string{"--tls-cert-file=c", "--tls-key-file=k", "--tls-client-ca-file=ca"}, true},
		{[]string{"--peer-tls-cert-file=c"}, false},
		{[]string{"--portal-auth=api-key"}, false},
		{[]string{"--portal-auth=api-key", "--api-keys-file=f"}, true},
		{[]string{"--portal-auth=jwt"}, false},
		{[]string{"--portal-auth=basic"}, false},
	} {
		f := NewFlags("svc")
		sec := RegisterSecurity(f, PublicAPI|Peers)
		if err := f.Parse(tt.args); err != nil {
			t.Fatal(err)
		}
		if err := sec.Check(); (err == nil) != tt.ok {
			t.Errorf("%v: Check() = %v, want ok=%v", tt.args, err, tt.ok)
		}
	}
	f := NewFlags("sms-dispatch")
	sec := RegisterSecurity(f, 0)
	if sec.PortalAuth != nil || sec.PeerTLSCAFile != nil || f.Lookup("portal-auth") != nil {
		t.Error("a service without a public API or peers got their flags")
	}
}
