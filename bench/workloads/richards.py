# Class-heavy: a task scheduler simulation with inheritance, properties and
# many small method calls (in the spirit of the Richards benchmark).
class Packet:
    __slots__ = ("kind", "data", "next")

    def __init__(self, kind, data, next=None):
        self.kind = kind
        self.data = data
        self.next = next


class Task:
    def __init__(self, name, priority):
        self.name = name
        self.priority = priority
        self.queue = None
        self.handled = 0

    @property
    def busy(self):
        return self.queue is not None

    def enqueue(self, packet):
        packet.next = None
        if self.queue is None:
            self.queue = packet
        else:
            p = self.queue
            while p.next is not None:
                p = p.next
            p.next = packet

    def dequeue(self):
        p = self.queue
        self.queue = p.next
        return p

    def run(self, scheduler):
        raise NotImplementedError


class Worker(Task):
    def run(self, scheduler):
        packet = self.dequeue()
        packet.data = (packet.data * 31 + self.priority) % 100003
        self.handled += 1
        scheduler.send(packet, "device" if packet.data % 3 else "handler")


class Handler(Task):
    def run(self, scheduler):
        packet = self.dequeue()
        packet.data ^= 0x5A5A
        self.handled += 1
        scheduler.send(packet, "device")


class Device(Task):
    def run(self, scheduler):
        packet = self.dequeue()
        self.handled += 1
        scheduler.done += packet.data & 0xFF
        if packet.kind > 0:
            scheduler.send(Packet(packet.kind - 1, packet.data), "worker")


class Scheduler:
    def __init__(self):
        self.tasks = {"worker": Worker("worker", 3), "handler": Handler("handler", 2),
                      "device": Device("device", 1)}
        self.order = sorted(self.tasks.values(), key=lambda t: -t.priority)
        self.done = 0

    def send(self, packet, name):
        self.tasks[name].enqueue(packet)

    def schedule(self):
        steps = 0
        while True:
            for task in self.order:
                if task.busy:
                    task.run(self)
                    steps += 1
                    break
            else:
                return steps


def main():
    total = 0
    for round_ in range(40):
        s = Scheduler()
        for i in range(400):
            s.send(Packet(6, i + round_), "worker")
        steps = s.schedule()
        total += steps + s.done
    print(total, [t.handled for t in s.order])


main()
