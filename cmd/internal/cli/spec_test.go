package cli

import (
	"path/filepath"
	"strings"
	"testing"

	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	"github.com/icpverify/icpverify/pkg/iddoc"
	"github.com/icpverify/icpverify/pkg/phone"
)

const examplesDir = "../../../examples/orders"

// Every example parses into an OrderSpec whose filing type matches its file name, with valid ID
// numbers and mobile numbers, and a subject_id exactly when the type needs one.
func TestExamplesParse(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(examplesDir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	types := map[filingv1.FilingType]bool{}
	kinds := map[filingv1.ServiceKind]bool{}
	for _, f := range files {
		if ext := filepath.Ext(f); ext != ".yaml" && ext != ".json" {
			continue
		}
		t.Run(filepath.Base(f), func(t *testing.T) {
			spec, err := ReadSpecFile(f)
			if err != nil {
				t.Fatal(err)
			}
			// The name is the filing type, with a suffix for a variant: add-website-app.yaml (新增APP).
			base := strings.TrimSuffix(filepath.Base(f), filepath.Ext(f))
			name := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(spec.GetFilingType().String(), "FILING_TYPE_"), "_", "-"))
			if base != name && !strings.HasPrefix(base, name+"-") {
				t.Errorf("filing_type %s in %s", spec.GetFilingType(), base)
			}
			types[spec.GetFilingType()] = true
			first := spec.GetFilingType() == filingv1.FilingType_FILING_TYPE_FIRST_FILING
			if first != (spec.GetSubjectId() == "") {
				t.Errorf("subject_id %q for %s", spec.GetSubjectId(), spec.GetFilingType())
			}
			persons := []*filingv1.Person{spec.GetPrincipal()}
			for _, w := range spec.GetWebsites() {
				persons = append(persons, w.GetPerson())
			}
			for _, sv := range spec.GetServices() {
				persons = append(persons, sv.GetPerson())
				kinds[sv.GetKind()] = true
				if sv.GetKind() == filingv1.ServiceKind_SERVICE_KIND_UNSPECIFIED {
					t.Errorf("a service without a kind")
				}
			}
			for _, p := range persons {
				if p == nil {
					continue
				}
				if err := iddoc.Validate("id_number", iddoc.Type(p.GetIdType()), p.GetIdNumber()); err != nil {
					t.Errorf("%s: %v", p.GetName(), err)
				}
				if n := p.GetHkMacaoIdNumber(); n != "" {
					if _, err := iddoc.CleanHKMacaoID("hk_macao_id_number", n); err != nil {
						t.Errorf("%s: %v", p.GetName(), err)
					}
				}
				if _, err := phone.Normalize("phone", p.GetPhone()); err != nil {
					t.Errorf("%s: phone: %v", p.GetName(), err)
				}
				if p.GetEmergencyPhone() != "" {
					if _, err := phone.Normalize("emergency_phone", p.GetEmergencyPhone()); err != nil {
						t.Errorf("%s: emergency phone: %v", p.GetName(), err)
					}
				}
			}
		})
	}
	if len(types) != 8 {
		t.Errorf("examples cover %d filing types, want all 8", len(types))
	}
	// Websites are in the websites of most examples; every kind has an example in services.
	if len(kinds) != 4 {
		t.Errorf("examples' services cover %d kinds, want all 4", len(kinds))
	}
}

func TestParseSpecSpellings(t *testing.T) {
	yamlDoc := `
filingType: first-filing
subject_type: SUBJECT_TYPE_INDIVIDUAL
principal:
  name: 王小明
  idType: resident_id_card
  id_number: 11010819791231789X
  phone: 13812345678
websites:
  - {domain: a.example.cn, changed: "true"}
`
	spec, err := ParseSpec([]byte(yamlDoc), false)
	if err != nil {
		t.Fatal(err)
	}
	if spec.GetFilingType() != filingv1.FilingType_FILING_TYPE_FIRST_FILING ||
		spec.GetSubjectType() != filingv1.SubjectType_SUBJECT_TYPE_INDIVIDUAL ||
		spec.GetPrincipal().GetIdType() != filingv1.IdDocumentType_ID_DOCUMENT_TYPE_RESIDENT_ID_CARD ||
		spec.GetPrincipal().GetPhone() != "13812345678" || spec.GetPrincipal().GetIdNumber() != "11010819791231789X" ||
		!spec.GetWebsites()[0].GetChanged() {
		t.Errorf("parsed %v", spec)
	}

	for _, tc := range []struct{ doc, want string }{
		{"filing_type: FIRST_FILING\nprincipal: {nmae: x}", `spec.principal: unknown field "nmae"`},
		{"filing_type: FIRST", `spec.filing_type: unknown value "FIRST"`},
		{"websites: {domain: a.cn}", "spec.websites: a list is expected"},
		{"", "the file is empty"},
		{"filing_type: [", "not valid YAML"},
	} {
		if _, err := ParseSpec([]byte(tc.doc), false); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want it to contain %q", tc.doc, err, tc.want)
		}
	}
	if _, err := ParseSpec([]byte(`{"filing_type": "ADD_WEBSITE", "subject_id": "s1"}`), true); err != nil {
		t.Errorf("JSON: %v", err)
	}
}
