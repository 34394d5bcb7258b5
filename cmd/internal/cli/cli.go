// Package cli is icpctl, the command-line client of the suite's public and internal APIs. Main takes
// its arguments and output streams and returns the exit code, so tests run it in-process.
package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"google.golang.org/grpc"

	"github.com/icpverify/icpverify/pkg/config"
	deadlinev1 "github.com/icpverify/icpverify/pkg/gen/icp/deadline/v1"
	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	smsv1 "github.com/icpverify/icpverify/pkg/gen/icp/smsdispatch/v1"
	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
)

// Exit codes; `icpctl help` documents them.
const (
	ExitOK                 = 0
	ExitError              = 1
	ExitUsage              = 2
	ExitInvalidArgument    = 3
	ExitNotFound           = 4
	ExitFailedPrecondition = 5
	ExitResourceExhausted  = 6
	ExitUnavailable        = 7
	ExitUnauthorized       = 8
)

const usageText = `icpctl - command-line client of the ICP filing SMS-verification suite

Usage: icpctl [global flags] COMMAND [flags] [args]

Commands (public API):
  create -f FILE                      create a DRAFT order from a YAML or JSON OrderSpec (see examples/orders)
  submit ORDER_ID                     submit an order: computes the verifiers and sends the codes
  status ORDER_ID                     order state and history, verifiers, deadline, verification progress, messages
  verify --phone P --code C --id-tail T
                                      check one verifier's entry (code from the SMS, last 6 of the ID number)
  resend --phone P --id-tail T        send a new code to a verifier (public API)
  cancel ORDER_ID [--reason TEXT]     cancel a DRAFT, RETURNED or AWAITING_VERIFICATION order
  list [--state STATE] [--limit N]    list orders, newest first (STATE e.g. UNDER_REVIEW)

Commands (internal API, operators and development):
  resend --order ORDER_ID --verifier VERIFIER_ID
                                      send a new code to one verifier of an order (ids from 'status')
  messages [--order ORDER_ID] [--limit N]
                                      list SMS messages (bodies are shown only in development mode)
  approve ORDER_ID [--comment TEXT]   record the administration's approval of an UNDER_REVIEW order
  reject ORDER_ID [--comment TEXT]    record the administration's rejection
  demo                                walk a FIRST_FILING order with two verifiers through verification
                                      against a running development server (make run / make demo)
  help                                this text

Global flags (also accepted after the command; each falls back to the environment variable shown):
  --filing-addr ADDR         filing service        (FILING_ADDR, default 127.0.0.1:50051)
  --verification-addr ADDR   verification service  (VERIFICATION_ADDR, default 127.0.0.1:50052)
  --sms-dispatch-addr ADDR   sms-dispatch service  (SMS_DISPATCH_ADDR, default 127.0.0.1:50053)
  --deadline-addr ADDR       deadline service      (DEADLINE_ADDR, default 127.0.0.1:50054)
  --output text|json         text for people; json prints one protojson document per command (ICPCTL_OUTPUT)
  --timeout DURATION         timeout of each call (ICPCTL_TIMEOUT, default 10s)
  --api-key-file FILE        the portal API key sent on public calls as x-api-key (ICPCTL_API_KEY_FILE)
  --token-file FILE          the internal token (an operator's or reviewer's) sent on internal calls (ICPCTL_TOKEN_FILE)
  --tls-ca-file FILE         PEM CA of the services' certificates: connect with TLS and check them (ICPCTL_TLS_CA_FILE);
                             without it icpctl speaks plaintext, as to the development suite

Every mutating call carries a fresh request_id, so running a command again is a new request.

Exit codes:
  0  success
  1  any other error (e.g. Internal from a service)
  2  usage error: unknown command or flag, missing argument, unreadable or invalid order file
  3  InvalidArgument: the service refused the input (the message names the field)
  4  NotFound: unknown order, or a verification entry that does not match
  5  FailedPrecondition or AlreadyExists: the order is not in a state that allows this
  6  ResourceExhausted: a limit was reached (resend limits, per-phone SMS caps); "retry after" says when
  7  Unavailable or DeadlineExceeded: a service cannot be reached or did not answer in time
  8  Unauthenticated or PermissionDenied: a credential is missing or wrong (--api-key-file, --token-file),
     or the identity may not call this RPC
`

// globals are the flags every command takes.
type globals struct {
	filingAddr, verificationAddr, smsAddr, deadlineAddr string
	output                                              string
	timeout                                             time.Duration
	creds                                               credentialFiles
}

// app is one invocation: its flags, streams and lazily dialled connections.
type app struct {
	g      globals
	stdout io.Writer
	stderr io.Writer
	conns  map[string]*grpc.ClientConn
	// dialOpts are the credentials and transport of every connection, read from the files once.
	dialOpts []grpc.DialOption
}

// usageError is a bad command line; it exits with ExitUsage.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

type command struct {
	run func(ctx context.Context, a *app, args []string) error
}

var commands map[string]command

func init() {
	commands = map[string]command{
		"create":   {runCreate},
		"submit":   {runSubmit},
		"status":   {runStatus},
		"verify":   {runVerify},
		"resend":   {runResend},
		"cancel":   {runCancel},
		"messages": {runMessages},
		"list":     {runList},
		"approve":  {func(ctx context.Context, a *app, args []string) error { return runReview(ctx, a, args, true) }},
		"reject":   {func(ctx context.Context, a *app, args []string) error { return runReview(ctx, a, args, false) }},
		"demo":     {runDemo},
	}
}

// Main runs icpctl with args (without the program name) and returns the exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := &app{stdout: stdout, stderr: stderr, conns: map[string]*grpc.ClientConn{}}
	defer a.close()
	err := a.run(ctx, args)
	if err == nil {
		return ExitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	msg, code := describe(a, err)
	fmt.Fprintln(stderr, "icpctl: "+msg)
	if code == ExitUsage {
		fmt.Fprintln(stderr, "Run 'icpctl help' for usage.")
	}
	return code
}

func (a *app) run(ctx context.Context, args []string) error {
	f := config.NewFlags("icpctl")
	f.SetOutput(io.Discard)
	filingAddr := f.String("filing-addr", config.DefaultFilingAddr, "filing service address")
	verificationAddr := f.String("verification-addr", config.DefaultVerificationAddr, "verification service address")
	smsAddr := f.String("sms-dispatch-addr", config.DefaultSMSDispatchAddr, "sms-dispatch service address")
	deadlineAddr := f.String("deadline-addr", config.DefaultDeadlineAddr, "deadline service address")
	// OUTPUT and TIMEOUT are too generic to read from a user's environment.
	f.EnvNames = map[string]string{"output": "ICPCTL_OUTPUT", "timeout": "ICPCTL_TIMEOUT",
		"api-key-file": "ICPCTL_API_KEY_FILE", "token-file": "ICPCTL_TOKEN_FILE", "tls-ca-file": "ICPCTL_TLS_CA_FILE"}
	output := f.String("output", "text", "output format: text or json")
	timeout := f.Duration("timeout", 10*time.Second, "timeout of each call")
	apiKeyFile := f.String("api-key-file", "", "file holding the portal API key sent on public calls")
	tokenFile := f.String("token-file", "", "file holding the internal token (operator, reviewer) sent on internal calls")
	tlsCAFile := f.String("tls-ca-file", "", "PEM CA that signed the services' certificates: use TLS and check them")
	if err := f.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(a.stdout, usageText)
			return flag.ErrHelp
		}
		return usageError{err.Error()}
	}
	a.g = globals{filingAddr: *filingAddr, verificationAddr: *verificationAddr, smsAddr: *smsAddr,
		deadlineAddr: *deadlineAddr, output: *output, timeout: *timeout,
		creds: credentialFiles{apiKeyFile: *apiKeyFile, tokenFile: *tokenFile, tlsCAFile: *tlsCAFile}}
	rest := f.Args()
	if len(rest) == 0 {
		fmt.Fprint(a.stderr, usageText)
		return usagef("no command given")
	}
	name, rest := rest[0], rest[1:]
	if name == "help" {
		fmt.Fprint(a.stdout, usageText)
		return nil
	}
	cmd, ok := commands[name]
	if !ok {
		return usagef("unknown command %q", name)
	}
	if err := a.checkGlobals(); err != nil {
		return err
	}
	return cmd.run(ctx, a, rest)
}

func (a *app) checkGlobals() error {
	switch a.g.output {
	case "text", "json":
	default:
		return usagef("--output %q: use text or json", a.g.output)
	}
	if a.g.timeout <= 0 {
		return usagef("--timeout must be positive")
	}
	return nil
}

func (a *app) json() bool { return a.g.output == "json" }

// flags returns a flag set for a command that also accepts the global flags, bound to the values
// parsed before the command name.
func (a *app) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("icpctl "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&a.g.filingAddr, "filing-addr", a.g.filingAddr, "")
	fs.StringVar(&a.g.verificationAddr, "verification-addr", a.g.verificationAddr, "")
	fs.StringVar(&a.g.smsAddr, "sms-dispatch-addr", a.g.smsAddr, "")
	fs.StringVar(&a.g.deadlineAddr, "deadline-addr", a.g.deadlineAddr, "")
	fs.StringVar(&a.g.output, "output", a.g.output, "")
	fs.DurationVar(&a.g.timeout, "timeout", a.g.timeout, "")
	fs.StringVar(&a.g.creds.apiKeyFile, "api-key-file", a.g.creds.apiKeyFile, "")
	fs.StringVar(&a.g.creds.tokenFile, "token-file", a.g.creds.tokenFile, "")
	fs.StringVar(&a.g.creds.tlsCAFile, "tls-ca-file", a.g.creds.tlsCAFile, "")
	return fs
}

// parse parses a command's flags, allowing flags after positional arguments, and checks the number
// of positionals.
func (a *app) parse(fs *flag.FlagSet, args []string, positional ...string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprint(a.stdout, usageText)
				return nil, flag.ErrHelp
			}
			return nil, usagef("%s: %v", fs.Name(), err)
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if err := a.checkGlobals(); err != nil {
		return nil, err
	}
	if len(pos) != len(positional) {
		if len(positional) == 0 {
			return nil, usagef("%s takes no arguments, got %q", fs.Name(), strings.Join(pos, " "))
		}
		return nil, usagef("%s needs %s", fs.Name(), strings.Join(positional, " "))
	}
	return pos, nil
}

// Service names, as used in error messages.
const (
	svcFiling       = "filing"
	svcVerification = "verification"
	svcSMS          = "sms-dispatch"
	svcDeadline     = "deadline"
)

var addrFlag = map[string]string{
	svcFiling: "--filing-addr", svcVerification: "--verification-addr", svcSMS: "--sms-dispatch-addr", svcDeadline: "--deadline-addr",
}

func (a *app) addr(svc string) string {
	switch svc {
	case svcFiling:
		return a.g.filingAddr
	case svcVerification:
		return a.g.verificationAddr
	case svcSMS:
		return a.g.smsAddr
	default:
		return a.g.deadlineAddr
	}
}

func (a *app) conn(svc string) (*grpc.ClientConn, error) {
	if c, ok := a.conns[svc]; ok {
		return c, nil
	}
	c, err := a.dial(a.addr(svc))
	if err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			return nil, err
		}
		return nil, usagef("%s address %q: %v", svc, a.addr(svc), err)
	}
	a.conns[svc] = c
	return c, nil
}

func (a *app) close() {
	for _, c := range a.conns {
		_ = c.Close()
	}
}

// callError ties an RPC error to the service and address it came from.
type callError struct {
	svc, addr string
	err       error
}

func (e *callError) Error() string { return fmt.Sprintf("%s at %s: %v", e.svc, e.addr, e.err) }
func (e *callError) Unwrap() error { return e.err }

// call runs one RPC with the per-call timeout and wraps its error.
func call[Resp any](ctx context.Context, a *app, svc string, fn func(context.Context, *grpc.ClientConn) (Resp, error)) (Resp, error) {
	var zero Resp
	c, err := a.conn(svc)
	if err != nil {
		return zero, err
	}
	cctx, cancel := context.WithTimeout(ctx, a.g.timeout)
	defer cancel()
	resp, err := fn(cctx, c)
	if err != nil {
		return zero, &callError{svc: svc, addr: a.addr(svc), err: err}
	}
	return resp, nil
}

// Typed client helpers keep the commands short.
func filingClient(c *grpc.ClientConn) filingv1.FilingServiceClient {
	return filingv1.NewFilingServiceClient(c)
}
func filingInternal(c *grpc.ClientConn) filingv1.FilingInternalServiceClient {
	return filingv1.NewFilingInternalServiceClient(c)
}
func verificationClient(c *grpc.ClientConn) verificationv1.VerificationServiceClient {
	return verificationv1.NewVerificationServiceClient(c)
}
func verificationInternal(c *grpc.ClientConn) verificationv1.VerificationInternalServiceClient {
	return verificationv1.NewVerificationInternalServiceClient(c)
}
func smsClient(c *grpc.ClientConn) smsv1.SmsDispatchServiceClient {
	return smsv1.NewSmsDispatchServiceClient(c)
}
func deadlineClient(c *grpc.ClientConn) deadlinev1.DeadlineServiceClient {
	return deadlinev1.NewDeadlineServiceClient(c)
}

// newRequestID returns a fresh request id, so a command run twice is two requests, not a retry.
func newRequestID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return "icpctl-" + hex.EncodeToString(b)
}
