// KafkaJS 2.x against runnel. Run by tests/compat/test_kafkajs.py, which
// starts the broker and passes its address in RUNNEL_BOOTSTRAP:
//
//   RUNNEL_BOOTSTRAP=127.0.0.1:9092 node --test kafkajs.test.js
//
// Coverage: producer (keys, headers, explicit timestamps, none + gzip
// compression, auto-create), admin (createTopics with configs, listTopics,
// fetchTopicMetadata, describeConfigs, describeCluster, fetchTopicOffsets,
// fetchTopicOffsetsByTimestamp, createPartitions, deleteTopicRecords,
// deleteTopics), and reading records back through KafkaJS's own Fetch
// encoder/decoder (its low-level Cluster/Broker objects).
//
// Group consumers (kafka.consumer().run()) are covered in groups.test.js.
'use strict'

const { describe, test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const crypto = require('node:crypto')

const { Kafka, logLevel, CompressionTypes, ConfigResourceTypes, Partitioners } = require('kafkajs')
// Low-level pieces (not part of the public API, stable across 2.x).
const Cluster = require('kafkajs/src/cluster')
const { createLogger, LEVELS } = require('kafkajs/src/loggers')
const LoggerConsole = require('kafkajs/src/loggers/console')
const defaultSocketFactory = require('kafkajs/src/network/socketFactory')

const BOOTSTRAP = process.env.RUNNEL_BOOTSTRAP
if (!BOOTSTRAP) {
  throw new Error('set RUNNEL_BOOTSTRAP=host:port of a running runnel broker')
}
const [HOST, PORT] = [BOOTSTRAP.slice(0, BOOTSTRAP.lastIndexOf(':')), Number(BOOTSTRAP.slice(BOOTSTRAP.lastIndexOf(':') + 1))]

const suffix = crypto.randomBytes(4).toString('hex')
const TOPIC = `kafkajs-main-${suffix}`
const GZIP_TOPIC = `kafkajs-gzip-auto-${suffix}`

const kafka = new Kafka({
  clientId: 'runnel-compat-kafkajs',
  brokers: [BOOTSTRAP],
  logLevel: logLevel.WARN,
  connectionTimeout: 3000,
  requestTimeout: 15000,
  retry: { retries: 3, initialRetryTime: 100 },
})

/** Reads every record of the given partitions from `fromOffset` up to the high watermark. */
async function fetchAll(topic, partitions, fromOffset = 0) {
  const cluster = new Cluster({
    logger: createLogger({ level: LEVELS.WARN, logCreator: LoggerConsole }),
    socketFactory: defaultSocketFactory(),
    brokers: [BOOTSTRAP],
    clientId: 'runnel-compat-kafkajs-lowlevel',
    connectionTimeout: 3000,
    requestTimeout: 15000,
    metadataMaxAge: 300000,
    allowAutoTopicCreation: false,
  })
  await cluster.connect()
  try {
    await cluster.addTargetTopic(topic)
    await cluster.refreshMetadata()
    const out = {}
    const byLeader = cluster.findLeaderForPartitions(topic, partitions)
    for (const [nodeId, parts] of Object.entries(byLeader)) {
      const broker = await cluster.findBroker({ nodeId })
      for (const partition of parts) {
        out[partition] = []
        let offset = BigInt(fromOffset)
        for (let round = 0; round < 100; round++) {
          const resp = await broker.fetch({
            isolationLevel: 0, // READ_UNCOMMITTED
            maxWaitTime: 50,
            minBytes: 1,
            maxBytes: 1 << 20,
            topics: [{ topic, partitions: [{ partition, fetchOffset: offset.toString(), maxBytes: 1 << 20 }] }],
          })
          const p = resp.responses[0].partitions[0]
          assert.equal(p.errorCode, 0, `fetch error on partition ${partition}`)
          const fresh = p.messages.filter(m => BigInt(m.offset) >= offset)
          out[partition].push(...fresh)
          if (fresh.length > 0) offset = BigInt(fresh[fresh.length - 1].offset) + 1n
          if (offset >= BigInt(p.highWatermark)) break
          assert.ok(fresh.length > 0, `fetch made no progress at offset ${offset} of partition ${partition}`)
        }
      }
    }
    return out
  } finally {
    await cluster.disconnect()
  }
}

describe('KafkaJS', () => {
  const admin = kafka.admin()
  const producer = kafka.producer({
    allowAutoTopicCreation: true,
    createPartitioner: Partitioners.DefaultPartitioner,
  })
  const baseTs = Date.now() - 3600 * 1000
  const N = 30

  before(async () => {
    await admin.connect()
    await producer.connect()
  })

  after(async () => {
    await producer.disconnect()
    await admin.disconnect()
  })

  test('describeCluster', async () => {
    const cluster = await admin.describeCluster()
    assert.equal(cluster.brokers.length, 1)
    assert.equal(cluster.brokers[0].host, HOST)
    assert.equal(cluster.brokers[0].port, PORT)
    assert.equal(cluster.controller, cluster.brokers[0].nodeId)
    assert.ok(cluster.clusterId)
  })

  test('createTopics with configs, listTopics, fetchTopicMetadata, describeConfigs', async () => {
    const created = await admin.createTopics({
      topics: [{
        topic: TOPIC,
        numPartitions: 3,
        replicationFactor: 1,
        configEntries: [{ name: 'retention.ms', value: '3600000' }],
      }],
      waitForLeaders: true,
    })
    assert.equal(created, true)
    // Creating it again reports false (already exists), not an exception.
    assert.equal(await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: 3 }] }), false)

    assert.ok((await admin.listTopics()).includes(TOPIC))
    const { topics } = await admin.fetchTopicMetadata({ topics: [TOPIC] })
    assert.equal(topics.length, 1)
    assert.equal(topics[0].name, TOPIC)
    const parts = topics[0].partitions.sort((a, b) => a.partitionId - b.partitionId)
    assert.deepEqual(parts.map(p => p.partitionId), [0, 1, 2])
    for (const p of parts) {
      assert.equal(p.partitionErrorCode, 0)
      assert.ok(p.leader >= 0)
      assert.deepEqual(p.replicas, [p.leader])
    }

    const cfg = await admin.describeConfigs({
      resources: [{ type: ConfigResourceTypes.TOPIC, name: TOPIC, configNames: ['retention.ms', 'cleanup.policy'] }],
      includeSynonyms: false,
    })
    const entries = Object.fromEntries(cfg.resources[0].configEntries.map(e => [e.configName, e]))
    assert.equal(cfg.resources[0].errorCode, 0)
    assert.equal(entries['retention.ms'].configValue, '3600000')
    assert.equal(entries['retention.ms'].isDefault, false)
    assert.equal(entries['cleanup.policy'].configValue, 'delete')
  })

  test('produce keyed records with headers and explicit timestamps', async () => {
    const messages = []
    for (let i = 0; i < N; i++) {
      messages.push({
        partition: i % 3,
        key: `key-${i}`,
        value: `value-${i}`,
        timestamp: String(baseTs + i * 1000),
        headers: { trace: `t-${i}`, bin: Buffer.from([0, i, 255]) },
      })
    }
    const res = await producer.send({ topic: TOPIC, acks: -1, messages })
    const byPartition = Object.fromEntries(res.map(r => [r.partition, r]))
    for (const p of [0, 1, 2]) {
      assert.equal(byPartition[p].errorCode, 0)
      assert.equal(byPartition[p].baseOffset, '0')
    }
    // A second send continues the offsets.
    const res2 = await producer.send({
      topic: TOPIC,
      messages: [{ partition: 0, key: 'late', value: 'late', timestamp: String(baseTs + N * 1000) }],
    })
    assert.equal(res2[0].baseOffset, String(N / 3))
  })

  test('fetchTopicOffsets and fetchTopicOffsetsByTimestamp', async () => {
    const offsets = (await admin.fetchTopicOffsets(TOPIC)).sort((a, b) => a.partition - b.partition)
    assert.deepEqual(offsets.map(o => [o.partition, o.low, o.high]), [
      [0, '0', String(N / 3 + 1)],
      [1, '0', String(N / 3)],
      [2, '0', String(N / 3)],
    ])
    // The first record at or after baseTs+15s: i=15,16,17 -> offset 5 in partitions 0,1,2.
    const byTs = (await admin.fetchTopicOffsetsByTimestamp(TOPIC, baseTs + 15000))
      .sort((a, b) => a.partition - b.partition)
    assert.deepEqual(byTs.map(o => [o.partition, o.offset]), [[0, '5'], [1, '5'], [2, '5']])
    // Between records: baseTs+15.5s -> i=16,17,18 -> offsets 6, 5, 5.
    const between = (await admin.fetchTopicOffsetsByTimestamp(TOPIC, baseTs + 15500))
      .sort((a, b) => a.partition - b.partition)
    assert.deepEqual(between.map(o => o.offset), ['6', '5', '5'])
    // After the last record: KafkaJS substitutes the high watermark.
    const future = (await admin.fetchTopicOffsetsByTimestamp(TOPIC, Date.now() + 3600 * 1000))
      .sort((a, b) => a.partition - b.partition)
    assert.deepEqual(future.map(o => o.offset), [String(N / 3 + 1), String(N / 3), String(N / 3)])
  })

  test('records read back through KafkaJS Fetch decoding keep keys, headers, timestamps', async () => {
    const got = await fetchAll(TOPIC, [0, 1, 2])
    for (const p of [0, 1, 2]) {
      const expected = []
      for (let i = p; i < N; i += 3) expected.push(i)
      const msgs = got[p].slice(0, expected.length)
      assert.equal(msgs.length, expected.length, `partition ${p}`)
      msgs.forEach((m, idx) => {
        const i = expected[idx]
        assert.equal(m.offset, String(idx))
        assert.equal(m.key.toString(), `key-${i}`)
        assert.equal(m.value.toString(), `value-${i}`)
        assert.equal(m.timestamp, String(baseTs + i * 1000))
        assert.equal(m.headers.trace.toString(), `t-${i}`)
        assert.deepEqual([...m.headers.bin], [0, i, 255])
      })
    }
    assert.equal(got[0].length, N / 3 + 1)
    assert.equal(got[0][N / 3].key.toString(), 'late')
  })

  test('gzip batch to an auto-created topic round-trips', async () => {
    assert.ok(!(await admin.listTopics()).includes(GZIP_TOPIC))
    const messages = []
    for (let i = 0; i < 50; i++) {
      messages.push({ partition: 0, key: `g${i}`, value: `gzip-${i}-`.repeat(20), headers: { n: String(i) } })
    }
    const res = await producer.send({ topic: GZIP_TOPIC, compression: CompressionTypes.GZIP, messages })
    assert.equal(res[0].errorCode, 0)
    assert.equal(res[0].baseOffset, '0')
    assert.ok((await admin.listTopics()).includes(GZIP_TOPIC))
    const got = await fetchAll(GZIP_TOPIC, [0])
    assert.equal(got[0].length, 50)
    got[0].forEach((m, i) => {
      assert.equal(m.offset, String(i))
      assert.equal(m.key.toString(), `g${i}`)
      assert.equal(m.value.toString(), `gzip-${i}-`.repeat(20))
      assert.equal(m.headers.n.toString(), String(i))
    })
  })

  test('createPartitions and deleteTopicRecords', async () => {
    await admin.createPartitions({ topicPartitions: [{ topic: TOPIC, count: 5 }] })
    const { topics } = await admin.fetchTopicMetadata({ topics: [TOPIC] })
    assert.equal(topics[0].partitions.length, 5)

    // A fresh producer: KafkaJS silently drops messages for partitions its
    // cached metadata does not know yet.
    const fresh = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner })
    await fresh.connect()
    const res = await fresh.send({ topic: TOPIC, messages: [{ partition: 4, value: 'new-partition' }] })
    await fresh.disconnect()
    assert.equal(res.length, 1)
    assert.equal(res[0].partition, 4)
    assert.equal(res[0].baseOffset, '0')

    await admin.deleteTopicRecords({ topic: TOPIC, partitions: [{ partition: 1, offset: '4' }] })
    const offsets = (await admin.fetchTopicOffsets(TOPIC)).sort((a, b) => a.partition - b.partition)
    assert.deepEqual(offsets.map(o => [o.partition, o.low, o.high]), [
      [0, '0', String(N / 3 + 1)],
      [1, '4', String(N / 3)],
      [2, '0', String(N / 3)],
      [3, '0', '0'],
      [4, '0', '1'],
    ])
    const got = await fetchAll(TOPIC, [1], 4)
    assert.equal(got[1][0].offset, '4')
    assert.equal(got[1][0].key.toString(), 'key-13')
  })

  test('deleteTopics', async () => {
    await admin.deleteTopics({ topics: [TOPIC, GZIP_TOPIC], timeout: 10000 })
    const topics = await admin.listTopics()
    assert.ok(!topics.includes(TOPIC))
    assert.ok(!topics.includes(GZIP_TOPIC))
  })
})
