/**
 * `deno task bench --only xds`: 2,000 proxyless clients on state-of-the-world
 * ADS against the real server.
 *
 * Targets (this 2-core machine; issue 10): a change to one service's
 * endpoints reaches (received and ACKed) the last affected proxy within
 * 50 ms at p99, flat in mesh size (1,000 services / 2,000 proxies and
 * 10,000 / 5,000), for at most 10 ms of server CPU; a policy write on one
 * service within 50 ms; with `--shared`, a change to the service every proxy
 * dials reaches all of them within 150 ms (2,000 proxies) or 400 ms (5,000);
 * server RSS <= 256 MB for 2,000 proxies (<= 512 MB peak, 400 MB settled
 * for 5,000 over 10,000 services, each proxy dialling 2-5 services); after
 * a server restart all proxies are reconnected and served within 10 s.
 *
 * 1. Starts `cmd/main.ts server` with `--xds-plaintext-addr 127.0.0.1:0` and
 *    `--push-debounce 10ms --push-max-delay 100ms`, registers S services
 *    (gRPC, two healthy instances each) as 20-instance nodes over REST, in
 *    batches, and measures the idle RSS.
 * 2. Starts `xds_load.ts` (one process): N streams over C HTTP/2 connections;
 *    measures the time until every proxy has ACKed LDS, RDS, CDS and EDS, the
 *    server's peak and settled RSS, and checks `GET /v1/proxies` (every
 *    stream in sync for four types).
 * 3. K changes, one at a time, each to a different service: a heartbeat turns
 *    one of its two instances' checks `failing`; measured from just before the
 *    heartbeat is sent to the moment the last proxy of that service ACKed the
 *    EDS response with one endpoint. Also the push duration from
 *    `ironmesh_xds_push_duration_seconds` and the server's CPU per change.
 *    With `--shared`, then M changes to the shared service (svc-0), turning
 *    one of its instances' checks failing and passing in turn, each measured
 *    to the last of all N proxies' ACK.
 * 4. P policy writes, one at a time, each a TrafficRoute on a different
 *    service (`rules: [{timeout: "<1+c>s"}]`) over `PUT /v1/policies/…`;
 *    measured from just before the PUT to the moment the last proxy of that
 *    service ACKed an RDS response with a new version and that timeout. Also
 *    the `reason="policy"` push duration and the server's CPU per write, next
 *    to the registry change's (a full recompute).
 * 5. SIGTERM, then the same command with the same data directory and ports;
 *    measures from SIGTERM until every proxy holds a new stream (first response
 *    after the old process exited) with all four types ACKed.
 *
 * Prints a markdown table to stdout (progress to stderr); exits 0 when the run
 * completed, target met or not; 1 when it could not run.
 */
import { markdownTable, ms, thousands } from "./report.ts";
import { readCpuMs, readMachineTicks, scrapeMetrics } from "./server_process.ts";
import { portOf, startXdsServer, type XdsServer } from "./xds_server.ts";
import type { XdsLoadConfig } from "./xds_load.ts";
import { withTimeout } from "./load_process.ts";
import { XDS_TARGET, xdsBenchOptions } from "./xds_options.ts";
import {
  api,
  INSTANCES_PER_NODE,
  INSTANCES_PER_SERVICE,
  NAMESPACE,
  nodeName,
  populate,
  proxiesInSync,
  spreadService,
} from "./xds_mesh.ts";
import {
  loadAverage,
  LoadProcess,
  meanRss,
  measureChange,
  type MeasuredChange,
  percentile,
  perChange,
  responseCounts,
  RssSampler,
  treeState,
} from "./xds_probes.ts";

const TARGET = XDS_TARGET;
const { values, N, S, C, K, P, SHARED, EXTRA, SHARED_CHANGES, RESTART_GAP_MS } = xdsBenchOptions(
  Deno.args,
);

const log = (msg: string) =>
  console.error(`[xds bench ${new Date().toISOString().slice(11, 19)}] ${msg}`);
const now = () => performance.timeOrigin + performance.now();
const sleep = (msMs: number) => new Promise((r) => setTimeout(r, msMs));
const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MB`;

// ---------------------------------------------------------------------------

const dataDir = await Deno.makeTempDir({ prefix: "ironmesh-xds-bench-" });
const serverOptions = {
  dataDir,
  pushDebounce: values.debounce,
  pushMaxDelay: values["max-delay"],
  ...(values["cpu-prof"] ? { cpuProfDir: values["cpu-prof"] } : {}),
};
let server: XdsServer | null = null;
let load: LoadProcess | null = null;
let code = 0;
try {
  const uptime = await loadAverage();
  log(`load average before the run: ${uptime}`);
  server = await startXdsServer(serverOptions);
  log(`server pid ${server.pid}: http ${server.http}, xds ${server.xdsPlaintext}`);
  const rss = new RssSampler(server.pid);

  // 1. Registry.
  const populated = await populate(server, S);
  log(
    `registered ${
      S * INSTANCES_PER_SERVICE
    } instances of ${S} services on ${populated.nodes} nodes in ${ms(populated.ms)}`,
  );
  const registryObjects = await scrapeMetrics(
    server.http.split(":")[0]!,
    portOf(server.http),
  );
  await sleep(1_500); // the last push, then quiet
  const idleRss = await meanRss(server.pid);
  log(`idle server RSS ${mb(idleRss)}`);

  // 2. Connect.
  const configFile = `${dataDir}/xds-load.json`;
  const loadConfig: XdsLoadConfig = {
    target: server.xdsPlaintext,
    proxies: N,
    services: S,
    connections: C,
    namespace: NAMESPACE,
    ...(SHARED ? { shared: 0 } : {}),
    ...(EXTRA > 0 ? { extra: EXTRA } : {}),
  };
  await Deno.writeTextFile(configFile, JSON.stringify(loadConfig));
  load = new LoadProcess(configFile);
  await load.next("ready", 60_000);
  rss.resetPeak();
  const cpu0 = readCpuMs(server.pid)!;
  const loadCpu0 = (await (load.send({ cmd: "stats" }), load.next("stats", 10_000)))
    .cpuMs as number;
  const machine0 = readMachineTicks();
  const t0 = now();
  await load.send({ cmd: "start" });
  const served = await load.next("served", 180_000);
  const connectMs = served.at - t0;
  const connectCpu = readCpuMs(server.pid)! - cpu0;
  const machine1 = readMachineTicks();
  const loadStats = await (load.send({ cmd: "stats" }), load.next("stats", 10_000));
  const connectLoadCpu = (loadStats.cpuMs as number) - loadCpu0;
  const connectPeak = rss.peak;
  log(
    `all ${N} served in ${ms(connectMs)}; server CPU ${ms(connectCpu)}, peak RSS ${
      mb(connectPeak)
    }`,
  );
  await sleep(2_000);
  // Idle CPU with every stream held (keepalives, timers), to put the per-change CPU in context.
  const idleCpu0 = readCpuMs(server.pid)!;
  await sleep(3_000);
  const idleCpuPerSec = (readCpuMs(server.pid)! - idleCpu0) / 3;
  const settledRss = await meanRss(server.pid);
  const sync1 = await proxiesInSync(server);
  log(
    `server view: ${sync1.streams} streams, ${sync1.inSync} with LDS/RDS/CDS/EDS in sync; settled RSS ${
      mb(settledRss)
    }`,
  );

  // 3. Changes.
  const host = server.http.split(":")[0]!;
  const metrics = { host, port: portOf(server.http) };
  const changeResponses0 = await responseCounts(load);
  const changeWindow = {
    machine: readMachineTicks(),
    server: readCpuMs(server.pid)!,
    load: readCpuMs(load.pid)!,
    at: performance.now(),
  };
  const probe = { pid: server.pid, ...metrics };
  const changes: MeasuredChange[] = [];
  for (let c = 0; c < K; c++) {
    const service = spreadService(c, 13, S) || 1;
    const node = Math.floor(service / INSTANCES_PER_NODE); // instance j = service is on node j/20
    const server_ = server;
    changes.push(
      await measureChange(load, probe, {
        expect: { cmd: "expect", id: c, service, endpoints: INSTANCES_PER_SERVICE - 1 },
        expecting: "expecting",
        done: "changed",
        timeoutMs: 15_000,
        reasons: ["endpoints", "registry"],
        act: () =>
          api(server_, "POST", `/v1/nodes/${nodeName(node)}/heartbeat`, {
            checks: [{ id: `i${service}`, status: "failing" }],
          }),
      }),
    );
    log(
      `change ${c + 1}/${K} (svc-${service}): last proxy ACKed after ${
        ms(changes.at(-1)!.latency)
      }, push ${ms(changes.at(-1)!.pushMs)} (${changes.at(-1)!.pushes} push)`,
    );
    await sleep(250);
  }
  const changeMachine = readMachineTicks();
  const windowMs = performance.now() - changeWindow.at;
  // Shares of one core during the change phase: whole machine, server, load, everything else.
  const share = (cpu: number) => (cpu / windowMs) * 100;
  const machineBusyChanges = ((changeMachine.busy - changeWindow.machine.busy) /
    (changeMachine.total - changeWindow.machine.total)) * 2 * 100;
  const serverShare = share(readCpuMs(server.pid)! - changeWindow.server);
  const loadShare = share(readCpuMs(load.pid)! - changeWindow.load);
  const otherShare = Math.max(0, machineBusyChanges - serverShare - loadShare);
  const latencies = changes.map((c) => c.latency).sort((a, b) => a - b);
  const pushMss = changes.map((c) => c.pushMs).filter(Number.isFinite).sort((a, b) => a - b);
  const cpus = changes.map((c) => c.cpuMs).sort((a, b) => a - b);
  const changeP50 = percentile(latencies, 50);
  const changeP99 = percentile(latencies, 99);
  const changeResponses = perChange(changeResponses0, await responseCounts(load), K);

  // 3b. Changes to the shared service: every proxy is affected.
  const shared: MeasuredChange[] = [];
  const sharedResponses0 = await responseCounts(load);
  for (let c = 0; c < SHARED_CHANGES; c++) {
    // svc-0's first instance is i0 on node 0; it fails, then passes again, in turn.
    const failing = c % 2 === 0;
    const server_ = server;
    shared.push(
      await measureChange(load, probe, {
        expect: {
          cmd: "expect",
          id: K + c,
          service: 0,
          endpoints: failing ? INSTANCES_PER_SERVICE - 1 : INSTANCES_PER_SERVICE,
        },
        expecting: "expecting",
        done: "changed",
        timeoutMs: 30_000,
        reasons: ["endpoints", "registry"],
        act: () =>
          api(server_, "POST", `/v1/nodes/${nodeName(0)}/heartbeat`, {
            checks: [{ id: "i0", status: failing ? "failing" : "passing" }],
          }),
      }),
    );
    log(
      `shared change ${c + 1}/${SHARED_CHANGES} (svc-0): all ${
        shared.at(-1)!.proxies
      } proxies ACKed after ${ms(shared.at(-1)!.latency)}`,
    );
    await sleep(250);
  }
  const sharedResponses = SHARED_CHANGES > 0
    ? perChange(sharedResponses0, await responseCounts(load), SHARED_CHANGES)
    : "";
  const sharedLatencies = shared.map((c) => c.latency).sort((a, b) => a - b);

  // 4. Policy changes: a TrafficRoute on one service changes that service's route configuration;
  // the push recomputes only the proxies that send to it (here the namespace's proxyless snapshot).
  const policyResponses0 = await responseCounts(load);
  const policyWindow = { server: readCpuMs(server.pid)!, at: performance.now() };
  const writes: MeasuredChange[] = [];
  for (let c = 0; c < P; c++) {
    const service = spreadService(c, 13 + Math.floor(S / 2), S);
    const timeout = `${1 + c}s`;
    const server_ = server;
    writes.push(
      await measureChange(load, probe, {
        expect: { cmd: "expectRoute", id: c, service, timeout },
        expecting: "expectingRoute",
        done: "routed",
        timeoutMs: 15_000,
        reasons: ["policy"],
        act: () =>
          api(server_, "PUT", `/v1/policies/trafficroute/${NAMESPACE}/svc-${service}`, {
            apiVersion: "ironmesh.io/v1",
            kind: "TrafficRoute",
            metadata: { name: `svc-${service}`, namespace: NAMESPACE },
            spec: { service: `svc-${service}`, rules: [{ timeout }] },
          }),
      }),
    );
    log(
      `policy ${
        c + 1
      }/${P} (TrafficRoute svc-${service}, timeout ${timeout}): last proxy ACKed after ${
        ms(writes.at(-1)!.latency)
      }, push ${ms(writes.at(-1)!.pushMs)} (${writes.at(-1)!.pushes} push)`,
    );
    await sleep(250);
  }
  const policyServerShare = ((readCpuMs(server.pid)! - policyWindow.server) /
    (performance.now() - policyWindow.at)) * 100;
  const policyResponses = perChange(policyResponses0, await responseCounts(load), P);
  const policyLatencies = writes.map((w) => w.latency).sort((a, b) => a - b);
  const policyPushMss = writes.map((w) => w.pushMs).filter(Number.isFinite).sort((a, b) => a - b);
  const policyCpus = writes.map((w) => w.cpuMs).sort((a, b) => a - b);
  const policyP50 = percentile(policyLatencies, 50);
  const policyP99 = percentile(policyLatencies, 99);

  // 5. Restart.
  const ports = {
    http: portOf(server.http),
    https: portOf(server.https),
    grpc: portOf(server.grpc),
    xds: portOf(server.xdsPlaintext),
  };
  const tTerm = now();
  const exitCode = await server.stop();
  const tExit = now();
  log(`old server exited with code ${exitCode} after ${ms(tExit - tTerm)}`);
  await load.send({ cmd: "reserved", after: tExit });
  if (RESTART_GAP_MS > 0) await sleep(RESTART_GAP_MS);
  server = await startXdsServer({ ...serverOptions, ports });
  const tReady = now();
  rss.pid = server.pid;
  rss.resetPeak();
  const cpuR0 = readCpuMs(server.pid) ?? 0;
  const reserved = await load.next("reserved", 120_000);
  const restartMs = reserved.at - tTerm;
  const restartPeak = rss.peak;
  const restartCpu = (readCpuMs(server.pid) ?? 0) - cpuR0;
  log(
    `all ${N} reconnected and served ${ms(reserved.at - tReady)} after the new server was ready, ${
      ms(restartMs)
    } after SIGTERM`,
  );
  await sleep(1_000);
  const sync2 = await proxiesInSync(server);
  const finalStats = await (load.send({ cmd: "stats" }), load.next("stats", 10_000));
  rss.stop();

  // Report.
  const rssPerProxyKb = (settledRss - idleRss) / N / 1024;
  const judged = N >= TARGET.proxies && S >= TARGET.services;
  const large = N >= 5_000 && S >= 10_000;
  const verdict = (ok: boolean) => (judged ? (ok ? "PASS" : "MISS") : "not judged");
  const peakAll = Math.max(connectPeak, rss.peak, restartPeak);
  const rssTarget = large ? TARGET.largeRssMb : TARGET.rssMb;
  const sharedTarget = large ? TARGET.largeSharedP99Ms : TARGET.sharedP99Ms;
  const sharedP99 = percentile(sharedLatencies, 99);
  const rows = [
    [
      `${thousands(N)} proxies / ${thousands(S)} services: server peak RSS`,
      `<= ${rssTarget} MB${large ? `, settled <= ${TARGET.largeSettledMb} MB` : ""}`,
      `${mb(peakAll)} (settled ${mb(settledRss)}; idle ${mb(idleRss)}; ${
        rssPerProxyKb.toFixed(0)
      } KB/proxy)`,
      verdict(
        peakAll <= rssTarget * 1024 * 1024 &&
          (!large || settledRss <= TARGET.largeSettledMb * 1024 * 1024),
      ),
    ],
    [
      `change -> last affected proxy ACKed (${K} changes)`,
      `p99 <= ${TARGET.changeP99Ms} ms`,
      `p50 ${ms(changeP50)}, p99 ${ms(changeP99)}, max ${ms(latencies.at(-1)!)}`,
      verdict(changeP99 <= TARGET.changeP99Ms),
    ],
    [
      "server CPU per endpoint change (/proc, 10 ms ticks)",
      `<= ${TARGET.changeCpuMs} ms`,
      `p50 ${ms(percentile(cpus, 50))}, max ${ms(cpus.at(-1)!)}`,
      verdict(percentile(cpus, 50) <= TARGET.changeCpuMs),
    ],
    ...(SHARED_CHANGES > 0
      ? [[
        `change to svc-0, dialled by every proxy -> all ${
          thousands(N)
        } ACKed (${SHARED_CHANGES} changes)`,
        `p99 <= ${sharedTarget} ms`,
        `p50 ${ms(percentile(sharedLatencies, 50))}, p99 ${ms(sharedP99)}, max ${
          ms(sharedLatencies.at(-1)!)
        }`,
        verdict(sharedP99 <= sharedTarget),
      ]]
      : []),
    [
      `policy write -> last affected proxy ACKed (${P} writes)`,
      `p99 <= ${TARGET.policyP99Ms} ms`,
      `p50 ${ms(policyP50)}, p99 ${ms(policyP99)}, max ${ms(policyLatencies.at(-1)!)}`,
      verdict(policyP99 <= TARGET.policyP99Ms),
    ],
    [
      "restart (SIGTERM) -> all reconnected and every type ACKed",
      `<= ${TARGET.restartMs / 1000} s`,
      `${ms(restartMs)}`,
      verdict(restartMs <= TARGET.restartMs),
    ],
    ["initial connect -> all served (not a target)", "", ms(connectMs), ""],
  ];
  const busy = (machine1.busy - machine0.busy) / (machine1.total - machine0.total) * 2 * 100;
  console.log(markdownTable(["measure", "target", "result", "verdict"], rows));
  console.log("");
  console.log(
    `- load: ${thousands(N)} proxyless ADS streams (SotW) over ${C} HTTP/2 connections (${
      (N / C).toFixed(0)
    } streams each) from 1 process; proxy i dials svc-(i mod ${S}).default${
      SHARED ? " and svc-0.default" : ""
    }${
      EXTRA > 0 ? ` and ${EXTRA} more services` : ""
    }; LDS → RDS → CDS → EDS, every response ACKed; reconnect as grpc-js-xds (immediate re-open after a response, else 1 s ×1.6 backoff; channel reconnect backoff 1 s ×1.6)`,
  );
  console.log(
    `- registry: ${S} services (grpc), ${
      S * INSTANCES_PER_SERVICE
    } instances on ${populated.nodes} nodes, registered in ${ms(populated.ms)}; objects ${
      [...registryObjects].filter(([k]) => k.startsWith("ironmesh_registry_objects")).map((
        [k, v],
      ) => `${k.replace(/.*kind="([^"]+)".*/, "$1")}=${v}`).join(" ")
    }`,
  );
  console.log(
    `- server: --push-debounce ${values.debounce} --push-max-delay ${
      values["max-delay"]
    }; load average before the run ${uptime}`,
  );
  console.log(
    `- connect: all served in ${ms(connectMs)}; server CPU ${ms(connectCpu)} (${
      (connectCpu / N * 1000).toFixed(0)
    } µs/proxy), load CPU ${ms(connectLoadCpu)}; machine busy ${
      busy.toFixed(0)
    }% of one core; server view after: ${sync1.streams} streams, ${sync1.inSync} in sync on all four types`,
  );
  console.log(
    `- RSS: idle ${mb(idleRss)} (registry loaded, no streams), peak during connect ${
      mb(connectPeak)
    }, settled ${mb(settledRss)}, peak after restart ${mb(restartPeak)}; ${
      rssPerProxyKb.toFixed(1)
    } KB per proxy above idle`,
  );
  console.log(
    `- CPU during the change phase (100% = one core): machine ${
      machineBusyChanges.toFixed(0)
    }%, server ${serverShare.toFixed(0)}%, load ${loadShare.toFixed(0)}%, other processes ${
      otherShare.toFixed(0)
    }%`,
  );
  console.log(
    `- changes: last ACK p50 ${ms(changeP50)}, p99 ${ms(changeP99)}, max ${
      ms(latencies.at(-1)!)
    }; first affected proxy p50 ${
      ms(percentile(
        changes.map((c) => c.first).sort((a, b) => a - b),
        50,
      ))
    }; includes the ${values.debounce} debounce and the heartbeat request`,
  );
  console.log(
    `- push (ironmesh_xds_push_duration_seconds, one per change): p50 ${
      ms(percentile(pushMss, 50))
    }, max ${ms(pushMss.at(-1) ?? NaN)}; server CPU per change ${ms(percentile(cpus, 50))} p50, ${
      ms(cpus.at(-1)!)
    } max (/proc, 10 ms ticks; idle with streams held: ${
      ms(idleCpuPerSec)
    }/s); pushes per change: ${
      [...new Set(changes.map((c) => c.pushes))].join(",")
    }; responses to proxies per change: ${changeResponses}`,
  );
  if (SHARED_CHANGES > 0) {
    const sharedCpus = shared.map((c) => c.cpuMs).sort((a, b) => a - b);
    const sharedPush = shared.map((c) => c.pushMs).filter(Number.isFinite).sort((a, b) => a - b);
    console.log(
      `- shared changes (svc-0's i0 failing, then passing, in turn): all ${
        thousands(N)
      } ACKed p50 ${ms(percentile(sharedLatencies, 50))}, p99 ${ms(sharedP99)}; push p50 ${
        ms(percentile(sharedPush, 50))
      }; server CPU per change p50 ${ms(percentile(sharedCpus, 50))}, max ${
        ms(sharedCpus.at(-1)!)
      }; responses to proxies per change: ${sharedResponses}`,
    );
  }
  console.log(
    `- policy writes (TrafficRoute \`rules: [{timeout}]\` on a different service each, PUT /v1/policies/trafficroute/${NAMESPACE}/svc-k): last ACK of an RDS response with the new timeout p50 ${
      ms(policyP50)
    }, p99 ${ms(policyP99)}, max ${ms(policyLatencies.at(-1)!)}; first affected proxy p50 ${
      ms(percentile(writes.map((w) => w.first).sort((a, b) => a - b), 50))
    }; PUT answered p50 ${
      ms(percentile(writes.map((w) => w.actMs).sort((a, b) => a - b), 50))
    }; includes the ${values.debounce} debounce and the PUT`,
  );
  console.log(
    `- policy push vs registry push (p50, max): push ${ms(percentile(policyPushMss, 50))}, ${
      ms(policyPushMss.at(-1) ?? NaN)
    } per policy write vs ${ms(percentile(pushMss, 50))}, ${
      ms(pushMss.at(-1) ?? NaN)
    } per registry change; server CPU ${ms(percentile(policyCpus, 50))}, ${
      ms(policyCpus.at(-1)!)
    } per policy write vs ${ms(percentile(cpus, 50))}, ${
      ms(cpus.at(-1)!)
    } per registry change; server ${
      policyServerShare.toFixed(0)
    }% of one core during the policy phase; pushes per write: ${
      [...new Set(writes.map((w) => w.pushes))].join(",")
    }; responses to proxies per write: ${policyResponses}`,
  );
  console.log(
    `- restart: SIGTERM → exit ${ms(tExit - tTerm)} (code ${exitCode}); ${
      RESTART_GAP_MS > 0 ? `held down ${ms(RESTART_GAP_MS)} (--restart-gap); ` : ""
    }exit → new server ready ${ms(tReady - tExit)}; ready → all ${thousands(N)} served ${
      ms(reserved.at - tReady)
    }; new server CPU meanwhile ${
      ms(restartCpu)
    }; server view after: ${sync2.streams} streams, ${sync2.inSync} in sync`,
  );
  const spread = (x: { min: number; p50: number; max: number }) =>
    `min ${ms(x.min)}, p50 ${ms(x.p50)}, max ${ms(x.max)}`;
  console.log(
    `- restart, per proxy, after the old process exited: first response ${
      spread(reserved.firstResponse)
    }; all four types ACKed ${spread(reserved.served)} (the gaps are grpc-js' reconnect backoff)`,
  );
  console.log(
    `- load process: ${finalStats.streamsOpened} streams opened, ${finalStats.responses} responses, ${finalStats.requests} requests, stream ends ${
      JSON.stringify(finalStats.endedBy)
    }, responses without the asked resource ${finalStats.missing}, load CPU total ${
      ms(finalStats.cpuMs)
    }`,
  );
  console.log(`- tree: ${await treeState()}`);
  const uptimeAfter = await loadAverage();
  console.log(`- load average after the run: ${uptimeAfter}`);
} catch (error) {
  console.error(`The xDS bench could not run: ${(error as Error).stack}`);
  if (server) console.error(`Server stderr:\n${server.stderrTail()}`);
  code = 1;
} finally {
  if (load) {
    await load.send({ cmd: "exit" }).catch(() => {});
    await withTimeout(load.exited, 10_000, "for the load process").catch(() => {});
  }
  if (server) {
    const exit = await server.stop();
    if (exit !== 0) {
      console.error(`Server exited with code ${exit} on SIGTERM:\n${server.stderrTail()}`);
    }
  }
  await Deno.remove(dataDir, { recursive: true }).catch(() => {});
}
Deno.exit(code);
