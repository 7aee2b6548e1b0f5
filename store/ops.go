package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berth-dev/berth/api"
)

// Keys of the operations parts (alerts are written by the server's alert
// engine only):
//
//	/berth/alerts/ID                          server: api.Alert
//	/berth/alerts-cursor                      server: last event Seq the alert engine handled
const (
	prefixAlerts = root + "alerts/"
	keyAlertsCur = root + "alerts-cursor"
)

// PutAlert stores an alert.
func (s *Store) PutAlert(ctx context.Context, a api.Alert) error {
	return s.put(ctx, prefixAlerts+a.ID, a)
}

// DeleteAlert forgets an alert.
func (s *Store) DeleteAlert(ctx context.Context, id string) error {
	return s.del(ctx, prefixAlerts+id)
}

// ListAlerts returns every stored alert (firing and recently resolved).
func (s *Store) ListAlerts(ctx context.Context) ([]api.Alert, error) {
	return listJSON[api.Alert](ctx, s, prefixAlerts)
}

// AlertCursor is the Seq of the last event the alert engine handled (0:
// none yet).
func (s *Store) AlertCursor(ctx context.Context) (int64, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	resp, err := s.cli.Get(ctx, keyAlertsCur)
	if err != nil {
		return 0, unavailable("get alert cursor", err)
	}
	if len(resp.Kvs) == 0 {
		return 0, nil
	}
	n, err := strconv.ParseInt(string(resp.Kvs[0].Value), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("decode alert cursor: %w", err)
	}
	return n, nil
}

// PutAlertCursor records the last event the alert engine handled.
func (s *Store) PutAlertCursor(ctx context.Context, seq int64) error {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	if _, err := s.cli.Put(ctx, keyAlertsCur, strconv.FormatInt(seq, 10)); err != nil {
		return unavailable("put alert cursor", err)
	}
	return nil
}

// TrimEventsBy keeps the event history within a retention: events older
// than maxAge (0: no age limit) and beyond the newest maxCount (0: the
// default 10000) are deleted. Event keys sort by time, so both are one
// range delete.
func (s *Store) TrimEventsBy(ctx context.Context, maxCount int, maxAge time.Duration) error {
	if maxCount <= 0 {
		maxCount = maxEvents
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	if maxAge > 0 {
		cut := fmt.Sprintf("%s%020d", prefixEvents, time.Now().Add(-maxAge).UnixNano())
		if _, err := s.cli.Delete(ctx, prefixEvents, clientv3.WithRange(cut)); err != nil {
			return unavailable("trim events", err)
		}
	}
	resp, err := s.cli.Get(ctx, prefixEvents, clientv3.WithPrefix(), clientv3.WithKeysOnly(),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithLimit(int64(maxCount)+1))
	if err != nil {
		return unavailable("trim events", err)
	}
	if len(resp.Kvs) <= maxCount {
		return nil
	}
	oldestKept := string(resp.Kvs[maxCount-1].Key)
	if _, err := s.cli.Delete(ctx, prefixEvents, clientv3.WithRange(oldestKept)); err != nil {
		return unavailable("trim events", err)
	}
	return nil
}

// LastEvent returns the newest of the recent events (up to 10000) for
// which match holds. Emitters of state events (engine, disk,
// certificates) read their last word with it after a restart.
func (s *Store) LastEvent(ctx context.Context, match func(api.Event) bool) (api.Event, bool, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	resp, err := s.cli.Get(ctx, prefixEvents, clientv3.WithPrefix(),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithLimit(maxEvents))
	if err != nil {
		return api.Event{}, false, unavailable("list events", err)
	}
	for _, kv := range resp.Kvs {
		var e api.Event
		if json.Unmarshal(kv.Value, &e) != nil {
			continue
		}
		if match(e) {
			e.Seq = kv.ModRevision
			return e, true, nil
		}
	}
	return api.Event{}, false, nil
}
