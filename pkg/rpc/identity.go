package rpc

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/icpverify/icpverify/pkg/config"
	authv1 "github.com/icpverify/icpverify/pkg/gen/icp/auth/v1"
)

// The roles of internal callers. A method's icp.auth.v1.callers option names the roles that may call it.
const (
	RoleFiling       = "filing"
	RoleVerification = "verification"
	RoleSMSDispatch  = "sms-dispatch"
	RoleDeadline     = "deadline"
	RoleOperator     = "operator"
	RoleReviewer     = "reviewer"
)

// Roles are every role an internal identity can have.
var Roles = []string{RoleFiling, RoleVerification, RoleSMSDispatch, RoleDeadline, RoleOperator, RoleReviewer}

// ReasonCallerNotAllowed is the ErrorInfo reason of an internal caller whose role the method does not admit.
const ReasonCallerNotAllowed = "CALLER_NOT_ALLOWED"

// MinTokenLength is the shortest internal token accepted (a torn or typed token is shorter).
const MinTokenLength = 32

// RoleOf returns the role of an internal identity: the identity itself when it is a role, else the
// role it starts with followed by '-' (operator-alice -> operator, sms-dispatch-2 -> sms-dispatch),
// else its part before the first '-'.
func RoleOf(identity string) string {
	for _, r := range Roles {
		if identity == r || strings.HasPrefix(identity, r+"-") {
			return r
		}
	}
	role, _, _ := strings.Cut(identity, "-")
	return role
}

// validIdentity: lower-case letters, digits, '-', '_' and '.', so an identity is safe in logs and ids.
func validIdentity(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// internalCaller is one line of --internal-callers-file: an identity and the SHA-256 of its token.
type internalCaller struct {
	identity string
	hash     [sha256.Size]byte
}

// parseInternalCallers reads lines "identity:sha256-hex-of-token"; blank lines and # comments are skipped.
func parseInternalCallers(data []byte) ([]internalCaller, error) {
	var out []internalCaller
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		id, hexHash, ok := strings.Cut(line, ":")
		id = strings.TrimSpace(id)
		h, err := hex.DecodeString(strings.TrimSpace(hexHash))
		if !ok || err != nil || len(h) != sha256.Size {
			return nil, fmt.Errorf("line %d: want identity:sha256-hex-of-token", n)
		}
		if !validIdentity(id) {
			return nil, fmt.Errorf("line %d: identity %q: use lower-case letters, digits, '-', '_' and '.'", n, id)
		}
		if seen[id] {
			return nil, fmt.Errorf("line %d: identity %q appears twice", n, id)
		}
		seen[id] = true
		c := internalCaller{identity: id}
		copy(c.hash[:], h)
		out = append(out, c)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, errors.New("no internal caller")
	}
	return out, nil
}

// checkToken is the rule of a service's own token: long enough to be generated, not a placeholder.
func checkToken(token string) error {
	if len(token) < MinTokenLength {
		return fmt.Errorf("the token has %d characters, want at least %d (make one with: openssl rand -hex 32)", len(token), MinTokenLength)
	}
	if config.IsPlaceholder(token) {
		return errors.New("the token is a placeholder (changeme, placeholder, example, or one character repeated): generate one with openssl rand -hex 32")
	}
	return nil
}

// parseOwnToken returns the first non-blank line of --internal-token-file: this service's own token.
func parseOwnToken(data []byte) (string, error) {
	for _, line := range strings.Split(string(data), "\n") {
		if t := strings.TrimSpace(line); t != "" {
			return t, checkToken(t)
		}
	}
	return "", errors.New("no token")
}

// readOwnToken reads a token file (a service's own token, or icpctl's --token-file).
func readOwnToken(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	t, err := parseOwnToken(data)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// certIdentity is the identity a verified client certificate names: the last path segment of its
// spiffe:// URI SAN (spiffe://cluster/ns/icp/sa/filing -> filing), else its CommonName.
func certIdentity(leaf *x509.Certificate) string {
	for _, u := range leaf.URIs {
		if u.Scheme == "spiffe" {
			p := strings.TrimRight(u.Path, "/")
			if i := strings.LastIndex(p, "/"); i >= 0 && p[i+1:] != "" {
				return p[i+1:]
			}
			if u.Host != "" && p == "" {
				return u.Host
			}
		}
	}
	return leaf.Subject.CommonName
}

// methodCallers reads the icp.auth.v1.callers option of every method of an internal service. It
// panics on a method without the option: an internal method nobody may call is a wiring mistake that
// must not start.
func methodCallers(desc *grpc.ServiceDesc) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	names := make([]string, 0, len(desc.Methods)+len(desc.Streams))
	for _, m := range desc.Methods {
		names = append(names, m.MethodName)
	}
	for _, st := range desc.Streams {
		names = append(names, st.StreamName)
	}
	for _, name := range names {
		full := protoreflect.FullName(desc.ServiceName + "." + name)
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(full)
		md, ok := d.(protoreflect.MethodDescriptor)
		if err != nil || !ok {
			panic(fmt.Sprintf("internal service %s: method %s has no descriptor, so no icp.auth.v1.callers option", desc.ServiceName, name))
		}
		roles, _ := proto.GetExtension(md.Options(), authv1.E_Callers).([]string)
		if len(roles) == 0 {
			panic(fmt.Sprintf("internal method %s has no (icp.auth.v1.callers) option: declare who may call it in its proto", full))
		}
		set := map[string]bool{}
		for _, r := range roles {
			set[r] = true
		}
		out["/"+desc.ServiceName+"/"+name] = set
	}
	return out
}
