// KafkaJS 2.x consumer groups against runnel. Run by
// tests/compat/test_groups.py with RUNNEL_BOOTSTRAP set:
//
//   RUNNEL_BOOTSTRAP=127.0.0.1:9092 node --test groups.test.js
//
// Two KafkaJS consumers share a group (consumer.run with eachMessage,
// KafkaJS's own assigner and auto commit); every record is consumed, and
// after both disconnect the group's committed offsets equal the log end.
'use strict'

const { test } = require('node:test')
const assert = require('node:assert/strict')
const crypto = require('node:crypto')
const { Kafka, logLevel, Partitioners } = require('kafkajs')

const BOOTSTRAP = process.env.RUNNEL_BOOTSTRAP
if (!BOOTSTRAP) {
  throw new Error('set RUNNEL_BOOTSTRAP=host:port of a running runnel broker')
}
const suffix = crypto.randomBytes(4).toString('hex')
const TOPIC = `kafkajs-group-${suffix}`
const GROUP = `kafkajs-group-${suffix}`
const N = 200

const kafka = new Kafka({
  clientId: 'runnel-compat-kafkajs-groups',
  brokers: [BOOTSTRAP],
  logLevel: logLevel.NOTHING,
})

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

test('two KafkaJS consumers share a group and commit', async () => {
  const admin = kafka.admin()
  await admin.connect()
  await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: 4 }] })

  const seen = new Map() // "p/o" -> consumer name
  const byConsumer = { one: 0, two: 0 }
  const consumers = []
  for (const name of ['one', 'two']) {
    const c = kafka.consumer({ groupId: GROUP, sessionTimeout: 10000, heartbeatInterval: 500 })
    await c.connect()
    await c.subscribe({ topic: TOPIC, fromBeginning: true })
    await c.run({
      autoCommitInterval: 100,
      eachMessage: async ({ partition, message }) => {
        const k = `${partition}/${message.offset}`
        assert.ok(!seen.has(k), `${k} consumed twice`)
        seen.set(k, name)
        byConsumer[name] += 1
      },
    })
    consumers.push(c)
  }
  // Both members in the group before producing.
  await sleep(3000)
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner })
  await producer.connect()
  await producer.send({
    topic: TOPIC,
    messages: Array.from({ length: N }, (_, i) => ({ key: `k${i}`, value: `v${i}`, partition: i % 4 })),
  })
  await producer.disconnect()

  const deadline = Date.now() + 60000
  while (seen.size < N && Date.now() < deadline) await sleep(100)
  assert.equal(seen.size, N)
  assert.ok(byConsumer.one > 0 && byConsumer.two > 0, JSON.stringify(byConsumer))

  const description = await admin.describeGroups([GROUP])
  assert.equal(description.groups[0].state, 'Stable')
  assert.equal(description.groups[0].members.length, 2)

  for (const c of consumers) await c.disconnect()
  const offsets = await admin.fetchOffsets({ groupId: GROUP, topics: [TOPIC] })
  const ends = await admin.fetchTopicOffsets(TOPIC)
  for (const p of offsets[0].partitions) {
    const end = ends.find((e) => e.partition === p.partition)
    assert.equal(p.offset, end.offset, `partition ${p.partition} committed ${p.offset}, end ${end.offset}`)
  }
  const groups = await admin.listGroups()
  assert.ok(groups.groups.some((g) => g.groupId === GROUP))
  await admin.deleteGroups([GROUP])
  await admin.disconnect()
})
