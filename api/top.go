package api

import "time"

// TopReport is what `berth top` shows: per service, the latest sample and
// the short history kept in memory (about an hour).
type TopReport struct {
	Interval Duration     `json:"interval"`
	Services []ServiceTop `json:"services"`
}

// ServiceTop is one service's resource use and traffic over time.
type ServiceTop struct {
	Stack   string      `json:"stack"`
	Service string      `json:"service"`
	Tasks   int         `json:"tasks"`
	Latest  TopSample   `json:"latest"`
	History []TopSample `json:"history,omitempty"`
}

// TopSample is one reading: CPU in cores, memory in bytes, requests and
// server errors per second through the ingress.
type TopSample struct {
	Time        time.Time `json:"time"`
	CPU         float64   `json:"cpu"`
	MemoryBytes int64     `json:"memory_bytes"`
	Requests    float64   `json:"requests_per_second"`
	Errors      float64   `json:"errors_per_second"`
}
