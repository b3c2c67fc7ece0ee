// The fleet page: renders /api/fleet, kept live by server-sent events. No library, no CDN.

(() => {
  const base = document.body.dataset.base || '';
  const colours = ['#2f6fdf', '#d9480f', '#2b8a3e', '#862e9c', '#e67700', '#0b7285'];
  const $ = (id) => document.getElementById(id);
  const text = (value) => document.createTextNode(String(value));
  const fmt = (n, digits = 0) => (Number.isFinite(n) ? n.toFixed(digits) : '–');
  const ms = (n) => (n >= 1000 ? `${fmt(n / 1000, 1)} s` : `${fmt(n)} ms`);

  function rows(tableId, items, cells) {
    const body = $(tableId).querySelector('tbody');
    body.replaceChildren(
      ...items.map((item) => {
        const tr = document.createElement('tr');
        for (const cell of cells(item)) {
          const td = document.createElement('td');
          td.append(cell instanceof Node ? cell : text(cell));
          tr.append(td);
        }
        return tr;
      }),
    );
    return body;
  }

  function chart(throughput) {
    const width = 900;
    const height = 160;
    const now = Date.now();
    const series = Object.entries(throughput);
    // The last 15 minutes, or since the first point when the history is younger (at least a minute).
    const first = Math.min(now, ...series.map(([, points]) => points[0]?.at ?? now));
    const from = Math.max(now - 15 * 60_000, Math.min(first, now - 60_000));
    const max = Math.max(1, ...series.flatMap(([, points]) => points.map((p) => p.completed)));
    const ns = 'http://www.w3.org/2000/svg';
    const svg = document.createElementNS(ns, 'svg');
    svg.setAttribute('viewBox', `0 0 ${width} ${height + 20}`);
    svg.setAttribute('preserveAspectRatio', 'none');
    const axis = document.createElementNS(ns, 'text');
    axis.setAttribute('x', '4');
    axis.setAttribute('y', '12');
    axis.setAttribute('font-size', '11');
    axis.textContent = `${fmt(max, 1)} jobs/s`;
    svg.append(axis);
    const legend = document.createElement('div');
    legend.className = 'legend';
    series.forEach(([queue, points], i) => {
      const colour = colours[i % colours.length];
      const path = document.createElementNS(ns, 'polyline');
      path.setAttribute(
        'points',
        points
          .map(
            (p) =>
              `${(((p.at - from) / (now - from)) * width).toFixed(1)},${(height - (p.completed / max) * (height - 16)).toFixed(1)}`,
          )
          .join(' '),
      );
      path.setAttribute('fill', 'none');
      path.setAttribute('stroke', colour);
      path.setAttribute('stroke-width', '2');
      svg.append(path);
      const label = document.createElement('span');
      label.style.color = colour;
      const last = points.at(-1);
      label.textContent = `■ ${queue} ${last ? fmt(last.completed, 1) : '0'} jobs/s`;
      legend.append(label);
    });
    $('chart').replaceChildren(svg, legend);
  }

  function render(page) {
    const lastRates = Object.values(page.throughput).map((points) => points.at(-1)?.completed ?? 0);
    $('throughput-total').textContent = fmt(
      lastRates.reduce((a, b) => a + b, 0),
      1,
    );
    const backlog = Object.values(page.backlog).reduce((n, b) => n + b.waiting, 0);
    $('backlog-total').textContent = String(backlog);
    const budget = page.pools.budget;
    $('fleet-budget').textContent = `${budget.inUse} / ${budget.max}`;
    $('fleet-budget').dataset.max = String(budget.max);
    $('fleet-pressure').replaceChildren(
      text(`open ${budget.open}, idle ${budget.idle}, waiters ${budget.waiting}`),
      document.createElement('br'),
      text(`acquire wait p50 ${ms(page.pools.acquireWaitMs.p50)}, p99 ${ms(page.pools.acquireWaitMs.p99)}`),
      document.createElement('br'),
      text(
        `evictions ${page.pools.counters.poolEvictions}, reclaims ${page.pools.counters.reclaims}, timeouts ${page.pools.counters.timeouts}, open breakers ${page.pools.breakersOpen ?? 0}`,
      ),
      // The fleet budget per database server, when the processes have one.
      ...(page.pools.servers ?? []).flatMap((s) => [
        document.createElement('br'),
        text(`${s.server}: leases ${s.leases} / ${s.limit}${s.waiting ? `, waiting ${s.waiting}` : ''}`),
      ]),
    );
    $('fairness').textContent = page.fairness === null ? '–' : fmt(page.fairness, 2);
    $('process-count').textContent = String(page.processes.length);
    chart(page.throughput);
    const queues = [...new Set([...Object.keys(page.queues), ...Object.keys(page.backlog)])].sort();
    rows('queues', queues, (queue) => {
      const q = page.queues[queue] ?? {
        running: 0,
        completed: 0,
        failed: 0,
        retried: 0,
        durations: { sumMs: 0, count: 0 },
        waitMs: { p50: 0, p99: 0 },
      };
      const b = page.backlog[queue] ?? { waiting: 0, readyTenants: 0 };
      return [
        queue,
        b.waiting,
        b.readyTenants,
        q.running,
        q.completed,
        q.failed,
        q.retried,
        q.durations.count ? ms(q.durations.sumMs / q.durations.count) : '–',
        `${ms(q.waitMs.p50)} / ${ms(q.waitMs.p99)}`,
      ];
    });
    const tenantLink = (t) => {
      const a = document.createElement('a');
      a.href = `${base}/queues/queue/${encodeURIComponent(`${t.queue}.${t.tenant}`)}`;
      a.textContent = t.tenant;
      a.addEventListener('click', () => fetch(`${base}/api/search?tenant=${encodeURIComponent(t.tenant)}`));
      return a;
    };
    rows('top-backlog', page.top.backlog, (t) => [t.queue, tenantLink(t), t.waiting, t.active, t.failed]);
    rows('top-throughput', page.top.throughput, (t) => [t.queue, tenantLink(t), t.completed, t.failed]);
    rows('top-failures', page.top.failures, (t) => [t.queue, tenantLink(t), t.failed, t.retried]);
    rows('top-wait', page.top.wait, (t) => [t.queue, tenantLink(t), ms(t.waitMs.p50), ms(t.waitMs.p99)]);
    const body = rows('processes', page.processes, (p) => [
      p.id,
      p.host,
      p.pid,
      p.version,
      `${fmt((page.at - p.startedAt) / 1000)} s`,
      `${fmt(p.heartbeatAgeMs / 1000, 1)} s ago`,
      p.running,
      p.pools ? `${p.pools.budget.inUse} / ${p.pools.budget.max}` : '–',
      p.pools ? p.pools.budget.waiting : '–',
      p.pools ? `${ms(p.pools.acquireWaitMs.p50)} / ${ms(p.pools.acquireWaitMs.p99)}` : '–',
      p.pools ? p.pools.counters.poolEvictions : '–',
      p.pools ? p.pools.counters.reclaims : '–',
      p.prewarm ? `${p.prewarm.warmed} of ${p.prewarm.totalActive} warmed, ${p.prewarm.failed} failed` : '–',
    ]);
    page.processes.forEach((p, i) => {
      body.children[i].dataset.pid = String(p.pid);
    });
    rows('pool-rows', page.pools.rows, (r) => [
      r.process,
      r.slug ?? '(shared schema pool)',
      r.mode,
      r.kind,
      r.open,
      r.inUse,
      r.idle,
      r.waiting,
    ]);
    const time = (at) => (at === null ? '–' : new Date(at).toLocaleTimeString());
    rows('fan-outs', page.fanOuts ?? [], (f) => [
      f.id,
      f.queue,
      f.cron,
      time(f.lastTick),
      f.progress ? `${f.progress.completed + f.progress.failed} / ${f.progress.total}` : '–',
      f.progress ? f.progress.failed : '–',
      f.progress ? f.progress.pending : '–',
      time(f.nextTick),
    ]);
    // A process of an older version publishes no breakers.
    $('breakers-open').textContent = String(page.pools.breakersOpen ?? 0);
    rows('breakers', page.pools.breakers ?? [], (b) => [
      b.process,
      b.slug ?? '(shared schema pool)',
      b.failures,
      `${fmt(Math.max(0, b.retryAt - page.at) / 1000, 1)} s`,
    ]);
    $('status').textContent = `updated ${new Date(page.at).toLocaleTimeString()} · engine ${page.engine}`;
  }

  $('search').addEventListener('submit', async (event) => {
    event.preventDefault();
    const tenant = $('search-tenant').value.trim();
    const answer = await fetch(`${base}/api/search?tenant=${encodeURIComponent(tenant)}`);
    const found = await answer.json();
    if (!answer.ok) {
      $('status').textContent = found.message;
      return;
    }
    window.location.href =
      found.partitions.length === 1
        ? `${base}/queues/queue/${encodeURIComponent(found.partitions[0])}`
        : `${base}/queues`;
  });

  fetch(`${base}/api/fleet`)
    .then((r) => r.json())
    .then(render)
    .catch(() => {});
  const events = new EventSource(`${base}/api/fleet/events`);
  events.onmessage = (message) => render(JSON.parse(message.data));
  events.onerror = () => {
    $('status').textContent = 'reconnecting…';
  };
})();
