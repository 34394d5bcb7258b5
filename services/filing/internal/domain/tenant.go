package domain

// Actor is who asks for a change of orders through the public API: a portal (one tenant, 接入商) or a
// caller that sees every tenant (the authority's own portal).
type Actor struct {
	ID          string // the caller's identity at the edge, e.g. "apikey:portal-a" (never a secret)
	Tenant      string
	CrossTenant bool
}

// ReasonNoTenant refuses a public call from a caller the edge gave no tenant (and no cross-tenant view).
const ReasonNoTenant = "NO_TENANT"

// Sees tells whether the actor may read and change order o. Another tenant's order is answered
// exactly like an unknown id (OrderNotFound), so ids tell a stranger nothing.
func (a Actor) Sees(o Order) bool { return a.CrossTenant || (a.Tenant != "" && a.Tenant == o.Tenant) }

// ListTenant is the tenant a listing is filtered by: "" (every tenant) for a cross-tenant actor.
func (a Actor) ListTenant() string {
	if a.CrossTenant {
		return ""
	}
	return a.Tenant
}

// HistoryName is the actor as the order history records it: the portal's tenant and caller.
func (a Actor) HistoryName() string {
	name := ActorPortal + ":" + a.Tenant
	if a.ID != "" {
		name += " (" + a.ID + ")"
	}
	return name
}
