package config

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// mainChildEnv makes the test binary run Main as a service binary would (see TestMain) with the
// arguments in the variable, space-separated.
const mainChildEnv = "CONFIG_TEST_MAIN_ARGS"

// TestMain runs Main in a child process started by TestMainExitStatus; Main exits, which a test
// function may not do.
func TestMain(m *testing.M) {
	if args, ok := os.LookupEnv(mainChildEnv); ok {
		os.Args = append([]string{"svc"}, strings.Fields(args)...)
		Main("svc", func(_ context.Context, args []string) error {
			f := NewFlags("svc")
			common := RegisterCommon(f, "127.0.0.1:1", "svc")
			if err := f.Parse(args); err != nil {
				return err
			}
			return common.Check()
		})
	}
	os.Exit(m.Run())
}

// TestMainExitStatus: --help and -h print the usage and exit 0, as a clean run does; a bad flag or
// a failed check exits 1 with the error.
func TestMainExitStatus(t *testing.T) {
	for _, tc := range []struct {
		args        string
		code        int
		stderr, not string
	}{
		{"--help", 0, "-grpc-addr", "help requested"},
		{"-h", 0, "-grpc-addr", "help requested"},
		{"--store=memory", 0, "", "svc: "},
		{"--no-such-flag", 1, "svc: flag provided but not defined: -no-such-flag", ""},
		{"--store=sqlite", 1, `svc: --store "sqlite"`, ""},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), mainChildEnv+"="+tc.args)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		err := cmd.Run()
		code := 0
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			code = exit.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tc.code || !strings.Contains(stderr.String(), tc.stderr) || (tc.not != "" && strings.Contains(stderr.String(), tc.not)) {
			t.Errorf("svc %s: exit %d, want %d; stderr:\n%s", tc.args, code, tc.code, stderr.String())
		}
	}
}
