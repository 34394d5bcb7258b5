package domain

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/icpverify/icpverify/pkg/errs"
)

// ServiceKind is the kind of an internet information service; the values mirror
// icp.filing.v1.ServiceKind.
type ServiceKind int32

// The service kinds.
const (
	KindWebsite     ServiceKind = iota + 1 // 网站: identified by its domain
	KindApp                                // APP: identified by its name
	KindMiniProgram                        // 小程序: identified by its platform and app id
	KindQuickApp                           // 快应用: identified by its package
)

var kindRoles = map[ServiceKind]string{KindWebsite: "website", KindApp: "app", KindMiniProgram: "mini_program",
	KindQuickApp: "quick_app"}

// Valid tells a known kind.
func (k ServiceKind) Valid() bool { _, ok := kindRoles[k]; return ok }

func (k ServiceKind) String() string {
	if n, ok := kindRoles[k]; ok {
		return n
	}
	return fmt.Sprintf("service_kind(%d)", int32(k))
}

// AppPlatform is an operating system an APP is published for; the values mirror
// icp.filing.v1.AppPlatform.
type AppPlatform int32

// The APP platforms.
const (
	PlatformAndroid AppPlatform = iota + 1
	PlatformIOS
	PlatformHarmony
)

// MiniPlatform is the platform a mini programme runs on; the values mirror
// icp.filing.v1.MiniProgramPlatform.
type MiniPlatform int32

// The mini programme platforms.
const (
	MiniWeChat MiniPlatform = iota + 1
	MiniAlipay
	MiniBaidu
	MiniDouyin
	MiniQQ
	MiniOther
)

var miniNames = map[MiniPlatform]string{MiniWeChat: "WECHAT", MiniAlipay: "ALIPAY", MiniBaidu: "BAIDU",
	MiniDouyin: "DOUYIN", MiniQQ: "QQ", MiniOther: "OTHER"}

// AppID is an APP's identity on one platform: the package name, bundle id or bundle name.
type AppID struct {
	Platform AppPlatform `json:"platform"`
	ID       string      `json:"id"`
}

// Service is one internet information service of an order or of an approved record, with its
// responsible person (服务负责人). Each kind fills its own fields; Key identifies it in a record.
type Service struct {
	Kind         ServiceKind  `json:"kind"`
	Domain       string       `json:"domain,omitempty"` // WEBSITE
	Name         string       `json:"name,omitempty"`
	AppIDs       []AppID      `json:"app_ids,omitempty"`       // APP
	MiniPlatform MiniPlatform `json:"mini_platform,omitempty"` // MINI_PROGRAM
	MiniAppID    string       `json:"mini_app_id,omitempty"`   // MINI_PROGRAM
	Package      string       `json:"package,omitempty"`       // QUICK_APP
	Person       *Person      `json:"person,omitempty"`
	Changed      bool         `json:"changed,omitempty"`
}

// Website is a service of kind WEBSITE as the contract's deprecated websites list it (its Kind may
// be left zero there).
type Website = Service

// Key identifies a service of a subject: its kind and what names it within the kind. It is also the
// verifier role of the service's person: "website:example.cn", "app:示例商城",
// "mini_program:WECHAT:wx0123456789abcdef", "quick_app:com.example.quick".
func (s Service) Key() string {
	switch s.Kind {
	case KindWebsite:
		return WebsiteRole(s.Domain)
	case KindApp:
		return "app:" + s.Name
	case KindMiniProgram:
		return "mini_program:" + miniNames[s.MiniPlatform] + ":" + s.MiniAppID
	case KindQuickApp:
		return "quick_app:" + s.Package
	}
	return s.Kind.String()
}

// The reasons of a service's shape.
const (
	ReasonInvalidServiceKind         = "INVALID_SERVICE_KIND"
	ReasonUnexpectedServiceField     = "UNEXPECTED_SERVICE_FIELD"
	ReasonMissingAppPlatforms        = "MISSING_APP_PLATFORMS"
	ReasonInvalidAppPlatform         = "INVALID_APP_PLATFORM"
	ReasonInvalidPackageName         = "INVALID_PACKAGE_NAME"
	ReasonInvalidMiniProgramPlatform = "INVALID_MINI_PROGRAM_PLATFORM"
	ReasonInvalidMiniProgramAppID    = "INVALID_MINI_PROGRAM_APP_ID"
	ReasonDuplicateService           = "DUPLICATE_SERVICE"
)

// Lengths in bytes of a service's identifiers.
const (
	MaxPackageLength   = 255 // Android allows longer package names in theory; stores and MIIT forms do not
	MaxMiniAppIDLength = 64
)

var (
	// packageRE is the reverse-domain form of Android package names, iOS bundle ids, HarmonyOS bundle
	// names and quick app packages: at least two dot-separated segments, each starting with a letter.
	packageRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]*(\.[A-Za-z][A-Za-z0-9_-]*)+$`)
	// miniAppIDRE: the platforms whose app id shape is published; the others take any id of letters,
	// digits, underscores and hyphens.
	miniAppIDRE = map[MiniPlatform]*regexp.Regexp{
		MiniWeChat: regexp.MustCompile(`^wx[0-9a-f]{16}$`),
		MiniAlipay: regexp.MustCompile(`^[0-9]{16}$`),
		MiniDouyin: regexp.MustCompile(`^tt[0-9a-f]{16}$`),
	}
	miniAppIDOther = regexp.MustCompile(`^[A-Za-z0-9_-]{4,64}$`)
)

// normalizeService checks the kind-specific fields of s (not its person), given at path, and
// returns it canonical: a website's domain in normalizeDomain's form, trimmed NFC names, trimmed
// identifiers, a WeChat or Douyin app id in lower case.
func normalizeService(path string, s Service) (Service, error) {
	var err error
	if !s.Kind.Valid() {
		return s, errs.Invalid(path+".kind", ReasonInvalidServiceKind, "kind is required: WEBSITE, APP, MINI_PROGRAM or QUICK_APP")
	}
	if s.Name, err = normalizeName(path+".name", s.Name, MaxWebsiteNameLength); err != nil {
		return s, err
	}
	if s.Name == "" && s.Kind != KindWebsite {
		return s, errs.Invalid(path+".name", ReasonMissingName, "the %s's name is required", s.Kind)
	}
	unexpected := func(field string) error {
		return errs.Invalid(path+"."+field, ReasonUnexpectedServiceField, "%s is not a field of a service of kind %s", field, s.Kind)
	}
	switch {
	case s.Kind != KindWebsite && strings.TrimSpace(s.Domain) != "":
		return s, unexpected("domain")
	case s.Kind != KindApp && len(s.AppIDs) > 0:
		return s, unexpected("app_platforms")
	case s.Kind != KindMiniProgram && s.MiniPlatform != 0:
		return s, unexpected("mini_program_platform")
	case s.Kind != KindMiniProgram && strings.TrimSpace(s.MiniAppID) != "":
		return s, unexpected("mini_program_app_id")
	case s.Kind != KindQuickApp && strings.TrimSpace(s.Package) != "":
		return s, unexpected("quick_app_package")
	}
	switch s.Kind {
	case KindWebsite:
		s.Domain, err = normalizeDomain(path+".domain", s.Domain)
	case KindApp:
		s.AppIDs, err = normalizeAppIDs(path+".app_platforms", s.AppIDs)
	case KindMiniProgram:
		s.MiniAppID, err = normalizeMiniAppID(path, s.MiniPlatform, s.MiniAppID)
	case KindQuickApp:
		s.Package, err = normalizePackage(path+".quick_app_package", s.Package)
	}
	return s, err
}

func normalizeAppIDs(path string, ids []AppID) ([]AppID, error) {
	if len(ids) == 0 {
		return nil, errs.Invalid(path, ReasonMissingAppPlatforms, "an APP lists at least one platform with its package name or bundle id")
	}
	out := make([]AppID, len(ids))
	seen := map[AppPlatform]int{}
	for i, id := range ids {
		p := fmt.Sprintf("%s[%d]", path, i)
		if id.Platform < PlatformAndroid || id.Platform > PlatformHarmony {
			return nil, errs.Invalid(p+".platform", ReasonInvalidAppPlatform, "platform is required: ANDROID, IOS or HARMONY")
		}
		if j, dup := seen[id.Platform]; dup {
			return nil, errs.Invalid(p+".platform", ReasonInvalidAppPlatform, "the platform is already listed as app_platforms[%d]", j)
		}
		seen[id.Platform] = i
		var err error
		if id.ID, err = normalizePackage(p+".package_or_bundle_id", id.ID); err != nil {
			return nil, err
		}
		out[i] = id
	}
	return out, nil
}

func normalizePackage(field, pkg string) (string, error) {
	pkg = strings.TrimSpace(pkg)
	if len(pkg) > MaxPackageLength || !packageRE.MatchString(pkg) {
		return "", errs.Invalid(field, ReasonInvalidPackageName,
			"a package name or bundle id of at most %d characters in reverse-domain form is required, e.g. com.example.shop", MaxPackageLength)
	}
	return pkg, nil
}

func normalizeMiniAppID(path string, platform MiniPlatform, id string) (string, error) {
	if _, ok := miniNames[platform]; !ok {
		return "", errs.Invalid(path+".mini_program_platform", ReasonInvalidMiniProgramPlatform,
			"mini_program_platform is required: WECHAT, ALIPAY, BAIDU, DOUYIN, QQ or OTHER")
	}
	id = strings.TrimSpace(id)
	re, published := miniAppIDRE[platform]
	if published {
		id = strings.ToLower(id)
	} else {
		re = miniAppIDOther
	}
	if len(id) > MaxMiniAppIDLength || !re.MatchString(id) {
		return "", errs.Invalid(path+".mini_program_app_id", ReasonInvalidMiniProgramAppID,
			"not a %s mini programme app id (%s)", miniNames[platform], re.String())
	}
	return id, nil
}

// FoldedServices is every service of s, its legacy websites first (a normalized or stored spec has
// none: they are in Services already).
func FoldedServices(s Spec) []Service { return foldWebsites(s.Websites, s.Services) }

// foldWebsites moves the legacy websites of s in front of its services, as services of kind WEBSITE.
func foldWebsites(websites, services []Service) []Service {
	if len(websites) == 0 {
		return services
	}
	out := make([]Service, 0, len(websites)+len(services))
	for _, w := range websites {
		if w.Kind == 0 {
			w.Kind = KindWebsite
		}
		out = append(out, w)
	}
	return append(out, services...)
}

// UnmarshalJSON reads a stored spec; one stored before services existed lists its websites in
// "websites", read as services of kind WEBSITE.
func (s *Spec) UnmarshalJSON(b []byte) error {
	type plain Spec
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*s = Spec(p)
	s.Services, s.Websites = foldWebsites(s.Websites, s.Services), nil
	return nil
}

// UnmarshalJSON reads a stored record; one approved before services existed lists its websites in
// "websites", read as services of kind WEBSITE.
func (s *Subject) UnmarshalJSON(b []byte) error {
	type plain Subject
	var p struct {
		plain
		Websites []Service `json:"websites"`
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*s = Subject(p.plain)
	s.Services = foldWebsites(p.Websites, s.Services)
	return nil
}
