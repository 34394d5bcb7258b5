package rpc

import (
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// The transport limits of every server (security review M5). A request over the receive limit is
// refused by gRPC itself with ResourceExhausted before it is decoded; the content limits of each
// service (counts and lengths, in its domain package) keep every valid request far below it.
const (
	// PublicMaxRecvMsgSize bounds a request on the public listener, and on a shared one (public
	// callers reach it): the largest order the default filing limits allow is under 100 KB, and the
	// largest internal request (OpenSession of such an order) under 60 KB.
	PublicMaxRecvMsgSize = 256 << 10
	// InternalMaxRecvMsgSize bounds a request on a separate internal listener (gRPC's default).
	InternalMaxRecvMsgSize = 4 << 20
	// MaxConcurrentStreams bounds the RPCs in flight on one connection; more wait in the client.
	MaxConcurrentStreams = 1000
	// KeepaliveMinTime is the shortest ping interval a client may use: Dial pings every 30 s; a
	// client pinging more often than every 10 s is sent GOAWAY (ENHANCE_YOUR_CALM).
	KeepaliveMinTime = 10 * time.Second
)

// transportLimits are the server options of the limits above for a listener with maxRecv.
func transportLimits(maxRecv int) []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(maxRecv),
		grpc.MaxConcurrentStreams(MaxConcurrentStreams),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: KeepaliveMinTime, PermitWithoutStream: true}),
	}
}
