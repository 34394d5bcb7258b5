package memstore

import (
	"slices"

	"github.com/icpverify/icpverify/services/filing/internal/domain"
)

// Deep copies: the store hands out and takes in values, never its own pointers or slices.

func clonePerson(p *domain.Person) *domain.Person {
	if p == nil {
		return nil
	}
	c := *p
	return &c
}

func cloneServices(ws []domain.Service) []domain.Service {
	if ws == nil {
		return nil
	}
	out := make([]domain.Service, len(ws))
	for i, w := range ws {
		w.Person = clonePerson(w.Person)
		w.AppIDs = slices.Clone(w.AppIDs)
		out[i] = w
	}
	return out
}

func cloneSpec(s domain.Spec) domain.Spec {
	s.Principal = clonePerson(s.Principal)
	s.Websites = cloneServices(s.Websites)
	s.Services = cloneServices(s.Services)
	return s
}

func cloneSubject(s domain.Subject) domain.Subject {
	s.Principal = clonePerson(s.Principal)
	s.Services = cloneServices(s.Services)
	return s
}

func cloneOrder(o domain.Order) domain.Order {
	o.Spec = cloneSpec(o.Spec)
	o.History = slices.Clone(o.History)
	if o.Verifiers != nil {
		vs := make([]domain.Verifier, len(o.Verifiers))
		for i, v := range o.Verifiers {
			vs[i] = domain.Verifier{Phone: v.Phone, Roles: slices.Clone(v.Roles), IDTails: slices.Clone(v.IDTails)}
		}
		o.Verifiers = vs
	}
	return o
}
