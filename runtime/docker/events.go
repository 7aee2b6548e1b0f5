package docker

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/events"

	"github.com/berth-dev/berth/runtime"
)

// Events streams container events for containers carrying all the labels.
// It returns once the engine has accepted the subscription (or failed to
// within the call timeout), so an action taken after Events returns is
// seen on the channel. The event channel closes when ctx ends or the
// stream breaks; a break also sends one error. Labels of an event are the
// engine's actor attributes: the container's labels plus the engine's own
// name, image and (for die) exitCode attributes.
func (d *Driver) Events(ctx context.Context, labels map[string]string) (<-chan runtime.Event, <-chan error) {
	f := labelFilter(labels)
	f.Add("type", string(events.ContainerEventType))
	sctx, answered, cancel := d.stream(ctx)
	msgs, errs := d.cli.Events(sctx, events.ListOptions{Filters: f})
	intime := answered()

	out := make(chan runtime.Event, 64)
	outErr := make(chan error, 1)
	go func() {
		defer cancel()
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case err := <-errs:
				if ctx.Err() == nil {
					if !intime {
						err = streamErr(sctx, err)
					}
					outErr <- d.wrap("engine events", err)
				}
				return
			case m := <-msgs:
				e, ok := toEvent(m)
				if !ok {
					continue
				}
				d.noteEvent(e)
				select {
				case out <- e:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, outErr
}

// toEvent maps an engine event to berth's; ok is false for actions berth
// ignores (exec_*, attach, rename, ...).
func toEvent(m events.Message) (e runtime.Event, ok bool) {
	action := string(m.Action)
	e = runtime.Event{ID: m.Actor.ID, Labels: m.Actor.Attributes, Time: eventTime(m)}
	switch action {
	case "health_status: healthy", "health_status: unhealthy":
		e.Action = runtime.EventHealth
		e.Health = strings.TrimPrefix(action, "health_status: ")
	case runtime.EventDie:
		e.Action = action
		e.ExitCode, _ = strconv.Atoi(m.Actor.Attributes["exitCode"])
	case runtime.EventStart, runtime.EventOOM, runtime.EventDestroy,
		runtime.EventCreate, runtime.EventStop, runtime.EventKill:
		e.Action = action
	default:
		return e, false
	}
	return e, true
}

func eventTime(m events.Message) time.Time {
	if m.TimeNano != 0 {
		return time.Unix(0, m.TimeNano)
	}
	return time.Unix(m.Time, 0)
}
