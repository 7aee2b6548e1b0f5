package server

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/berth-dev/berth/api"
)

// audit records one mutating call. Bodies are never recorded: they can
// carry secret values.
func (s *Server) audit(r *http.Request, pattern string, p Principal, rec *recorder, authErr error, took time.Duration) {
	e := api.AuditEntry{
		Time: time.Now().UTC(), Who: p.Who, Role: p.Role, Tenant: p.Tenant,
		From: r.RemoteAddr, Method: r.Method, Path: r.URL.Path, Status: rec.status, Duration: api.Duration(took),
	}
	if e.Who == "" {
		e.Who = "unauthenticated"
		if tok := r.Header.Get("Authorization"); tok != "" {
			if id, _, err := ParseToken(trimBearer(tok)); err == nil {
				e.Who = "token:" + id
			}
		}
	}
	if e.From == "" || e.From == "@" {
		e.From = "unix"
	}
	if len(e.Path) > 256 {
		e.Path = e.Path[:256] + "…"
	}
	if stack := pathParam(pattern, r.URL.Path, "stack"); stack != "" && api.ValidateName("stack", stack) == nil {
		e.Stack = stack
		if owner, ok, err := s.store.StackOwner(r.Context(), stack); err == nil && ok {
			e.Tenant = owner
		}
	}
	switch {
	case rec.status == http.StatusUnauthorized || rec.status == http.StatusForbidden:
		e.Outcome = "denied"
	case rec.status >= 400:
		e.Outcome = "failed"
	default:
		e.Outcome = "ok"
	}
	if rec.errMsg != "" {
		e.Error = rec.errMsg
	} else if authErr != nil {
		e.Error = authErr.Error()
	}
	// The request's context may be gone (a client that hung up): the
	// record is written regardless, bounded by the store's timeout.
	if err := s.store.AppendAudit(context.WithoutCancel(r.Context()), e); err != nil {
		s.log.Error("write audit entry", "method", e.Method, "path", e.Path, "err", err)
	}
}

func trimBearer(h string) string {
	if len(h) > 7 && h[:7] == "Bearer " {
		return h[7:]
	}
	return h
}

func (s *Server) listAudit(w http.ResponseWriter, r *http.Request) (any, error) {
	q := r.URL.Query()
	limit := 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10000 {
			return nil, api.Invalidf("limit %q: use a number from 1 to 10000", v)
		}
		limit = n
	}
	stack := q.Get("stack")
	if stack != "" {
		if err := api.ValidateName("stack name", stack); err != nil {
			return nil, err
		}
	}
	p := principal(r.Context())
	// Filters are applied after the read: read more so that a filtered
	// answer still fills its limit in most cases.
	read := limit
	if stack != "" || p.Scoped() {
		read = min(limit*10, 100000)
	}
	all, err := s.store.ListAudit(r.Context(), 0, read)
	if err != nil {
		return nil, err
	}
	out := []api.AuditEntry{}
	for _, e := range all {
		if stack != "" && e.Stack != stack {
			continue
		}
		if p.Scoped() && e.Tenant != p.Tenant {
			continue
		}
		out = append(out, e)
	}
	if len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out, nil
}

func (s *Server) hostAudit(w http.ResponseWriter, r *http.Request) (any, error) {
	if s.sec.HostAudit == nil {
		return nil, fmt.Errorf("%w: this server cannot audit its host", api.ErrUnavailable)
	}
	own, _ := strconv.ParseBool(r.URL.Query().Get("own"))
	return s.sec.HostAudit(r.Context(), own)
}
