// Compile-time capacities of the node core. Every static buffer is sized from these; override any
// of them with -D in platformio.ini (build_flags) to fit a board.
#pragma once

#ifndef TINYFL_MAX_DIM
#define TINYFL_MAX_DIM 64  // embedding size d
#endif
#ifndef TINYFL_MAX_CLASSES
#define TINYFL_MAX_CLASSES 8  // classes k (HAR 6, NSL-KDD 5; the 12-activity HAR task needs 12)
#endif
#ifndef TINYFL_CACHE_CAPACITY
#define TINYFL_CACHE_CAPACITY 512  // embeddings kept in the ring buffer
#endif
#ifndef TINYFL_MAX_EPOCHS
#define TINYFL_MAX_EPOCHS 64  // local epochs per round (docs/WIRE.md: 1..64)
#endif
#ifndef TINYFL_MAX_NODE_ID
#define TINYFL_MAX_NODE_ID 32  // bytes in a node id
#endif
#ifndef TINYFL_BACKBONE_ARENA
#define TINYFL_BACKBONE_ARENA 16384  // backbone activation scratch (the model build's limit)
#endif
#ifndef TINYFL_MAX_PEERS
#define TINYFL_MAX_PEERS 32  // other nodes a node shares secure-aggregation seeds with
#endif
#ifndef TINYFL_MQTT_RX_BUFFER
#define TINYFL_MQTT_RX_BUFFER 2048  // largest incoming MQTT packet (a GLOBAL); bigger ones are dropped
#endif
#ifndef TINYFL_MQTT_TX_BUFFER
#define TINYFL_MQTT_TX_BUFFER 2048  // outgoing MQTT bytes; an UPDATE is encoded straight into it
#endif

namespace tinyfl {
constexpr unsigned kMaxDim = TINYFL_MAX_DIM;
constexpr unsigned kMaxClasses = TINYFL_MAX_CLASSES;
constexpr unsigned kHeadValues = kMaxClasses * (kMaxDim + 1);  // weights plus bias column
constexpr unsigned kCacheCapacity = TINYFL_CACHE_CAPACITY;
constexpr unsigned kMaxEpochs = TINYFL_MAX_EPOCHS;
constexpr unsigned kMaxNodeId = TINYFL_MAX_NODE_ID;
constexpr unsigned kBackboneArena = TINYFL_BACKBONE_ARENA;
constexpr unsigned kMqttRxBuffer = TINYFL_MQTT_RX_BUFFER;
constexpr unsigned kMaxPeers = TINYFL_MAX_PEERS;
constexpr unsigned kMqttTxBuffer = TINYFL_MQTT_TX_BUFFER;
}  // namespace tinyfl
