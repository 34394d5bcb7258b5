package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
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
