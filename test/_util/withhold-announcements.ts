import type { Notifier, StreamChange } from '../../src/streams/notifier.js';

/**
 * Holds back a notifier's event-stream announcements (the window between a commit and its
 * announcement, held open): `held` lists them in order, `release()` announces the oldest held
 * one, `restore()` puts the notifier back and announces the rest.
 */
export function withholdEventAnnouncements(notifier: Notifier) {
  const held: Array<{ change: Extract<StreamChange, { stream: 'events' }>; wake: string[] }> = [];
  const publish = notifier.publish.bind(notifier);
  notifier.publish = (change, wake) => {
    if (change.stream === 'events') held.push({ change, wake: [...wake] });
    else publish(change, wake);
  };
  return {
    held,
    release(): void {
      const h = held.shift();
      if (h) publish(h.change, h.wake);
    },
    restore(): void {
      notifier.publish = publish;
      for (const h of held.splice(0)) publish(h.change, h.wake);
    },
  };
}
