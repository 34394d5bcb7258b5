package domain

// DevTenant is the tenant of a session whose request named none (rows from before tenants, or a
// filing without portal auth): the tenant rpc gives every public caller with --portal-auth=none.
const DevTenant = "dev"

// TenantOf is the tenant a session records for a request's tenant field.
func TenantOf(requested string) string {
	if requested == "" {
		return DevTenant
	}
	return requested
}

// Scope is whose challenges and sessions a public caller may see: its tenant's, or every tenant's
// for a cross-tenant caller (the authority's own portal).
type Scope struct {
	Tenant string
	All    bool
}

// Sees reports whether the caller of scope s may see a session of tenant. A caller without a
// tenant (no portal auth in front, as in the store suites) is the development tenant.
func (s Scope) Sees(tenant string) bool {
	return s.All || TenantOf(s.Tenant) == TenantOf(tenant)
}

// Visible returns the indexes of the challenges of chs (with their sessions) the caller of scope
// may see, in order. Both engines lock every pending challenge of a phone, whatever its tenant (the
// per-phone failure budget spans tenants and must serialise all checks of the phone), and the rules
// look only at the visible ones.
func Visible(scope Scope, sessions map[string]Session, chs []Challenge) []int {
	idx := make([]int, 0, len(chs))
	for i, c := range chs {
		if scope.Sees(sessions[c.SessionID].Tenant) {
			idx = append(idx, i)
		}
	}
	return idx
}
