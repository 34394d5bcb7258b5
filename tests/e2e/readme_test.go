package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	authv1 "github.com/icpverify/icpverify/pkg/gen/icp/auth/v1"
	deadlinev1 "github.com/icpverify/icpverify/pkg/gen/icp/deadline/v1"
	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	smsv1 "github.com/icpverify/icpverify/pkg/gen/icp/smsdispatch/v1"
	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
)

// The README's configuration table lists every flag each binary accepts, and no flag they lack.
func TestReadmeListsEveryFlag(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	// Only the configuration table's rows count: a flag named in prose is not documented.
	documented := map[string]bool{}
	flagInRow := regexp.MustCompile("`--([a-z-]+)`")
	for _, line := range strings.Split(string(readme), "\n") {
		if !strings.HasPrefix(line, "| `--") {
			continue
		}
		cells := strings.Split(line, "|")
		for _, m := range flagInRow.FindAllStringSubmatch(cells[1], -1) {
			documented[m[1]] = true
		}
	}
	accepted := map[string]bool{}
	flagRE := regexp.MustCompile(`(?m)^\s+-([a-z-]+)`)
	for _, s := range append(services, "edge") {
		out, _ := exec.Command(filepath.Join(binDir, s), "-h").CombinedOutput()
		for _, m := range flagRE.FindAllStringSubmatch(string(out), -1) {
			accepted[m[1]] = true
			if !documented[m[1]] {
				t.Errorf("%s accepts --%s, which the README's configuration table does not list", s, m[1])
			}
		}
	}
	for f := range documented {
		if !accepted[f] {
			t.Errorf("the README documents --%s, which no binary accepts", f)
		}
	}
}

// The README's "Who may call what" table is the contracts' icp.auth.v1.callers options: every internal
// method with the roles its proto admits, and no other row.
func TestReadmeCallersTableIsTheProtos(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(readme), "### Who may call what")
	if !ok {
		t.Fatal("the README has no \"Who may call what\" section")
	}
	documented := map[string]string{} // "verification OpenSession" -> "filing"
	methodRE := regexp.MustCompile("`([A-Za-z]+)`")
	for _, line := range strings.Split(table, "\n") {
		if strings.HasPrefix(line, "#") {
			break
		}
		cells := strings.Split(line, "|")
		if len(cells) < 4 || !strings.Contains(cells[1], "`") {
			continue
		}
		svc := strings.Fields(cells[1])[0]
		for _, m := range methodRE.FindAllStringSubmatch(cells[1], -1) {
			documented[svc+" "+m[1]] = strings.TrimSpace(cells[2])
		}
	}
	services := map[string]string{"icp.filing.v1": "filing", "icp.verification.v1": "verification",
		"icp.smsdispatch.v1": "sms-dispatch", "icp.deadline.v1": "deadline"}
	contract := map[string]string{}
	for _, fd := range []protoreflect.FileDescriptor{filingv1.File_icp_filing_v1_filing_proto,
		verificationv1.File_icp_verification_v1_verification_proto, smsv1.File_icp_smsdispatch_v1_smsdispatch_proto,
		deadlinev1.File_icp_deadline_v1_deadline_proto} {
		for i := 0; i < fd.Services().Len(); i++ {
			sd := fd.Services().Get(i)
			for j := 0; j < sd.Methods().Len(); j++ {
				md := sd.Methods().Get(j)
				roles, _ := proto.GetExtension(md.Options(), authv1.E_Callers).([]string)
				if len(roles) > 0 {
					contract[services[string(fd.Package())]+" "+string(md.Name())] = strings.Join(roles, ", ")
				}
			}
		}
	}
	for m, roles := range contract {
		if got, ok := documented[m]; !ok || got != roles {
			t.Errorf("README, who may call what: %s has roles %q, the proto %q", m, got, roles)
		}
	}
	for m := range documented {
		if _, ok := contract[m]; !ok {
			t.Errorf("README, who may call what: %s is no internal method of the protos", m)
		}
	}
}
