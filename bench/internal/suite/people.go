package suite

import (
	"fmt"
	"os"
	"path/filepath"

	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
)

// ResidentID completes a 17-digit prefix with its GB 11643 check character.
func ResidentID(prefix17 string) string {
	weights := []int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}
	sum := 0
	for i, c := range prefix17 {
		sum += int(c-'0') * weights[i]
	}
	return prefix17 + string("10X98765432"[sum%11])
}

// Person is the i-th responsible person of a load: a valid resident ID unique per i (up to 336,000).
func Person(name, phone string, i int) *filingv1.Person {
	return &filingv1.Person{Name: name, IdType: filingv1.IdDocumentType_ID_DOCUMENT_TYPE_RESIDENT_ID_CARD,
		IdNumber: ResidentID(fmt.Sprintf("1101051980%02d%02d%03d", (i/28000)%12+1, (i/1000)%28+1, i%1000)), Phone: phone}
}

// FindRoot returns the workspace root (the folder holding go.work) above the working directory.
func FindRoot() string {
	dir, _ := os.Getwd()
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.work")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return dir
		}
	}
}
