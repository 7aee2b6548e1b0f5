package api

import (
	"testing"
	"time"
)

func TestStabilityTime(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc string
		spec ServiceSpec
		want time.Duration
	}{
		{desc: "judged by its container alone", spec: ServiceSpec{}, want: DefaultStability},
		{desc: "a route is probed from outside", spec: ServiceSpec{Routes: []HTTPRoute{{Port: 8080}}}, want: 0},
		{desc: "a published TCP port is probed from outside", spec: ServiceSpec{Ports: []Port{{Target: 53, Protocol: "tcp"}}}, want: 0},
		{desc: "a UDP port is not", spec: ServiceSpec{Ports: []Port{{Target: 53, Protocol: "udp"}}}, want: DefaultStability},
		{desc: "the spec's own stability wins", spec: ServiceSpec{Routes: []HTTPRoute{{Port: 8080}}, Update: UpdatePolicy{Stability: Duration(2 * time.Second)}}, want: 2 * time.Second},
	}
	for _, tt := range tests {
		if got := tt.spec.StabilityTime(); got != tt.want {
			t.Errorf("%s: %s, want %s", tt.desc, got, tt.want)
		}
	}
}
