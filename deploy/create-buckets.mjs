// Creates the buckets docker-compose.yml's regions tier to, once the three stores are up:
// a MinIO bucket (S3 API), an Azurite container and a fake-gcs-server bucket. Meridian never
// creates buckets itself (in production they come with their access policies), so the
// compose file runs this first, in Meridian's own image (whose production dependencies
// include the three SDKs), and starts the regions once it has exited 0.
// Existing buckets are fine: a restarted stack runs it again.
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { BlobServiceClient } from '@azure/storage-blob';
import { Storage } from '@google-cloud/storage';

const env = process.env;
const bucket = env.BUCKET ?? 'meridian-tiered';

async function s3() {
  const client = new S3Client({
    endpoint: env.S3_ENDPOINT,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: env.S3_ACCESS_KEY_ID, secretAccessKey: env.S3_SECRET_ACCESS_KEY },
  });
  try {
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
  } catch (err) {
    if (err.name !== 'BucketAlreadyOwnedByYou' && err.name !== 'BucketAlreadyExists') throw err;
  }
  console.log(`s3: bucket ${bucket} at ${env.S3_ENDPOINT}`);
}

async function azure() {
  const service = BlobServiceClient.fromConnectionString(env.AZURE_CONNECTION_STRING);
  await service.getContainerClient(bucket).createIfNotExists();
  console.log(`azure: container ${bucket}`);
}

async function gcs() {
  const storage = new Storage({ apiEndpoint: env.GCS_ENDPOINT, projectId: env.GCS_PROJECT });
  const [exists] = await storage.bucket(bucket).exists();
  if (!exists) await storage.createBucket(bucket);
  console.log(`gcs: bucket ${bucket} at ${env.GCS_ENDPOINT}`);
}

await Promise.all([s3(), azure(), gcs()]);
