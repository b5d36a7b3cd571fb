"""Real-robot side: rosbag2 logs, alignment, the ROS2 node and log replay."""
