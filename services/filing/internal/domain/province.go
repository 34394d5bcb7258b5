package domain

import (
	"fmt"
	"slices"
	"strings"

	"golang.org/x/text/width"

	"github.com/icpverify/icpverify/pkg/errs"
)

// An order names its province: the provincial administration (管局) that reviews it. It is kept as
// the GB/T 2260 two-digit code of one of the 31 mainland provincial divisions, each with its own
// administration; Hong Kong, Macau and Taiwan have none.

type province struct{ code, abbr, zh, full, en string }

var provinces = []province{
	{"11", "BJ", "北京", "北京市", "Beijing"}, {"12", "TJ", "天津", "天津市", "Tianjin"},
	{"13", "HE", "河北", "河北省", "Hebei"}, {"14", "SX", "山西", "山西省", "Shanxi"},
	{"15", "NM", "内蒙古", "内蒙古自治区", "Inner Mongolia"}, {"21", "LN", "辽宁", "辽宁省", "Liaoning"},
	{"22", "JL", "吉林", "吉林省", "Jilin"}, {"23", "HL", "黑龙江", "黑龙江省", "Heilongjiang"},
	{"31", "SH", "上海", "上海市", "Shanghai"}, {"32", "JS", "江苏", "江苏省", "Jiangsu"},
	{"33", "ZJ", "浙江", "浙江省", "Zhejiang"}, {"34", "AH", "安徽", "安徽省", "Anhui"},
	{"35", "FJ", "福建", "福建省", "Fujian"}, {"36", "JX", "江西", "江西省", "Jiangxi"},
	{"37", "SD", "山东", "山东省", "Shandong"}, {"41", "HA", "河南", "河南省", "Henan"},
	{"42", "HB", "湖北", "湖北省", "Hubei"}, {"43", "HN", "湖南", "湖南省", "Hunan"},
	{"44", "GD", "广东", "广东省", "Guangdong"}, {"45", "GX", "广西", "广西壮族自治区", "Guangxi"},
	{"46", "HI", "海南", "海南省", "Hainan"}, {"50", "CQ", "重庆", "重庆市", "Chongqing"},
	{"51", "SC", "四川", "四川省", "Sichuan"}, {"52", "GZ", "贵州", "贵州省", "Guizhou"},
	{"53", "YN", "云南", "云南省", "Yunnan"}, {"54", "XZ", "西藏", "西藏自治区", "Xizang"},
	{"61", "SN", "陕西", "陕西省", "Shaanxi"}, {"62", "GS", "甘肃", "甘肃省", "Gansu"},
	{"63", "QH", "青海", "青海省", "Qinghai"}, {"64", "NX", "宁夏", "宁夏回族自治区", "Ningxia"},
	{"65", "XJ", "新疆", "新疆维吾尔自治区", "Xinjiang"},
}

// ProvinceZhejiang is the code of Zhejiang, whose administration checks a HK/Macau permit holder
// against the identity card on the permit's back (the default of Rules.BackIDTailProvinces).
const ProvinceZhejiang = "33"

// ReasonInvalidProvince is the reason of a province outside the list.
const ReasonInvalidProvince = "INVALID_PROVINCE"

// ParseProvince returns the code of a province given as its code ("33"), its ISO 3166-2:CN
// abbreviation ("ZJ", "CN-ZJ"), its Chinese name with or without the suffix ("浙江", "浙江省") or its
// English name ("Zhejiang"), in any case and width; ok=false when it is none.
func ParseProvince(s string) (code string, ok bool) {
	s = strings.TrimSpace(width.Fold.String(s))
	up := strings.TrimPrefix(strings.ToUpper(s), "CN-")
	for _, p := range provinces {
		if up == p.code || up == p.abbr || s == p.zh || s == p.full || strings.EqualFold(s, p.en) {
			return p.code, true
		}
	}
	return "", false
}

// ProvinceName is the Chinese name of a province code, for messages.
func ProvinceName(code string) string {
	for _, p := range provinces {
		if p.code == code {
			return p.zh
		}
	}
	return code
}

func normalizeProvince(field, s string) (string, error) {
	if strings.TrimSpace(s) == "" {
		return "", nil
	}
	code, ok := ParseProvince(s)
	if !ok {
		return "", errs.Invalid(field, ReasonInvalidProvince,
			"not a mainland province: use its GB/T 2260 code (33), abbreviation (ZJ) or name (浙江)")
	}
	return code, nil
}

// ParseProvinces reads a list of provinces (a flag): comma-separated, any spelling ParseProvince
// takes; "" is the empty list.
func ParseProvinces(list string) ([]string, error) {
	out := []string{}
	for _, s := range strings.Split(list, ",") {
		if strings.TrimSpace(s) == "" {
			continue
		}
		code, ok := ParseProvince(s)
		if !ok {
			return nil, fmt.Errorf("%q is not a mainland province (use a GB/T 2260 code, an abbreviation like ZJ or a name)", s)
		}
		if !slices.Contains(out, code) {
			out = append(out, code)
		}
	}
	return out, nil
}

// backIDTail tells whether province's administration checks a HK/Macau permit holder against the
// identity card on the permit's back (Rules.BackIDTailProvinces; nil: Zhejiang only).
func (r Rules) backIDTail(province string) bool {
	if province == "" {
		return false
	}
	if r.BackIDTailProvinces == nil {
		return province == ProvinceZhejiang
	}
	return slices.Contains(r.BackIDTailProvinces, province)
}
