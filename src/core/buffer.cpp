// BlockPool: a bounded free list of read blocks for one worker.
#include "core/buffer.hpp"

#include <new>

namespace sluice {

BlockPool::~BlockPool() {
  while (free_) {
    Block* next = free_->next_free;
    ::operator delete(free_);
    free_ = next;
  }
}

Block* BlockPool::get_new() {
  auto* b = static_cast<Block*>(::operator new(sizeof(Block)));
  b->pool = this;
  b->next_free = nullptr;
  b->refs = 1;
  ++in_use_;
  return b;
}

void BlockPool::release(Block* b) noexcept {
  --in_use_;
  ::operator delete(b);
}

}  // namespace sluice
