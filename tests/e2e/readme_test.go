package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
)

// The README's configuration table lists every flag each binary accepts, and no flag they lack.
func TestReadmeListsEveryFlag(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("`--([a-z-]+)`").FindAllStringSubmatch(string(readme), -1) {
		documented[m[1]] = true
	}
	accepted := map[string]bool{}
	flagRE := regexp.MustCompile(`(?m)^\s+-([a-z-]+)`)
	for _, s := range services {
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
