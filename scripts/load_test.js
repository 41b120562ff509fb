// k6 load test from the guide, adapted: run with `k6 run scripts/load_test.js`
// (GATEWAY_URL overrides the target). Each virtual user sends one of 200
// prompts, so the run exercises misses and hits as real traffic does.
import http from 'k6/http';
import { check, sleep } from 'k6';
import { Trend } from 'k6/metrics';

const hitDuration = new Trend('hit_duration', true);

const url = (__ENV.GATEWAY_URL || 'http://localhost:8080') + '/v1/chat/completions';

export let options = {
  stages: [
    { duration: '30s', target: 50 },
    { duration: '1m', target: 50 },
    { duration: '30s', target: 100 },
    { duration: '1m', target: 100 },
    { duration: '30s', target: 0 },
  ],
  thresholds: {
    hit_duration: ['p(95)<100'], // cache hits under 100 ms (misses wait for the provider)
    http_req_failed: ['rate<0.01'],
  },
};

export default function () {
  const payload = JSON.stringify({
    model: 'gpt-4',
    messages: [{ role: 'user', content: `Hello, world! #${Math.floor(Math.random() * 200)}` }],
  });
  const res = http.post(url, payload, { headers: { 'Content-Type': 'application/json' } });
  if (res.headers['X-Cache-Status'] === 'HIT') hitDuration.add(res.timings.duration);
  check(res, {
    'status is 200': (r) => r.status === 200,
    'has metadata': (r) => JSON.parse(r.body).metadata !== undefined,
    'hit under 100ms': (r) => r.headers['X-Cache-Status'] !== 'HIT' || r.timings.duration < 100,
  });
  sleep(1);
}
