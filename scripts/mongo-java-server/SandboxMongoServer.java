// The sandbox's second MongoDB-protocol server ("mongo2"): de.bwaldvogel's mongo-java-server
// (in-memory backend) with its oplog on, presented as the single-node replica set "rs0".
//
// Why a wrapper: the newest version built into mongo-java-server 1.47.0 reports wire
// version 8, below what pymongo 4.x accepts, so this one reports MongoDB 5.0 (wire 13). And
// a server only has an oplog as a replica-set member, so isMaster names the set, its one host
// and this member as writable primary, as a single-node `mongod --replSet rs0` would.
// Nothing else is emulated: `hello`, replSetGetStatus, applyOps, sessions, transactions and
// change streams stay unsupported, as in the library (see the README's MongoDB section).
//
// Usage: java -cp CLASSES:LIB/* SandboxMongoServer HOST PORT
import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.MongoVersion;
import de.bwaldvogel.mongo.backend.memory.MemoryBackend;
import de.bwaldvogel.mongo.bson.Document;
import io.netty.channel.Channel;
import java.util.List;
import java.util.concurrent.CountDownLatch;

public final class SandboxMongoServer {
    static final String SET_NAME = "rs0";

    /** MongoDB 5.0's version and wire version (13). */
    static final class Version implements MongoVersion {
        @Override
        public List<Integer> getVersionArray() {
            return List.of(5, 0, 0);
        }

        @Override
        public String toVersionString() {
            return "5.0.0";
        }

        @Override
        public int getWireVersion() {
            return 13;
        }
    }

    /** The in-memory backend, answering isMaster as the primary of a one-member set. */
    static final class Backend extends MemoryBackend {
        private final String me;

        Backend(String me) {
            this.me = me;
        }

        @Override
        public Document handleCommand(Channel channel, String db, String command, Document query) {
            Document reply = super.handleCommand(channel, db, command, query);
            if (command.equalsIgnoreCase("ismaster")) {
                reply.put("setName", SET_NAME);
                reply.put("setVersion", 1);
                reply.put("hosts", List.of(me));
                reply.put("primary", me);
                reply.put("me", me);
                reply.put("secondary", false);
            }
            return reply;
        }
    }

    public static void main(String[] args) throws InterruptedException {
        if (args.length != 2) {
            System.err.println("usage: SandboxMongoServer HOST PORT");
            System.exit(2);
        }
        String host = args[0];
        int port = Integer.parseInt(args[1]);
        Backend backend = new Backend(host + ":" + port);
        backend.version(new Version());
        MongoServer server = new MongoServer(backend);
        server.enableOplog();
        server.bind(host, port);
        System.err.println("mongo-java-server listening on " + host + ":" + port + " (oplog on)");
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            server.shutdownNow();
            stopped.countDown();
        }));
        stopped.await();
    }
}
